"""Continual learning through the CLI: `train --continue-from` with a new class, and `retrain` promoting a good candidate
and rejecting one trained on label-shuffled data (production unchanged)."""
import json
from pathlib import Path

import numpy as np, pandas as pd
import pytest

from conftest import tiny_config, as_sets

FAST = ['model.arch=medcnn_small', 'augment.enabled=false', 'data.cache=memory', 'train.lr=3e-3']

def test_continue_from_adds_a_new_class_and_remembers_the_old_data(tmp_path, cli_inproc):
    first = tiny_config(tmp_path, *FAST, 'data.synthetic.n_classes=2', 'data.synthetic.n_images=60', 'train.epochs=1')
    cli_inproc('train', *as_sets(first), '--run-dir', tmp_path/'a', '--quiet', check=True)
    old = json.loads((tmp_path/'a'/'model'/'model.json').read_text())
    second = tiny_config(None, *FAST, f'data.path={tmp_path}/data3', 'data.synthetic.n_classes=3', 'data.synthetic.n_images=60',
                         'train.epochs=1', 'data.seed=7', 'continual.memory=24')
    r = cli_inproc('train', *as_sets(second), '--continue-from', tmp_path/'a', '--run-dir', tmp_path/'b', '--quiet')
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path/'b'/'model'/'model.json').read_text())
    assert old['classes'] == ['mel', 'nv'] and meta['classes'] == ['bkl', 'mel', 'nv']          # the head grew by the new class
    lineage = meta['lineage']
    assert [e['experience'] for e in lineage] == [0, 1] and lineage[0]['data_version'] == old['data_version']
    assert set(lineage[1]['accuracy']) == {'test_0', 'test_1'}                                    # measured on both test sets
    assert all((tmp_path/'b'/'model'/e['test_set']).exists() for e in lineage)                  # the test sets travel with the model
    with np.load(tmp_path/'b'/'model'/'continual'/'memory.npz') as z:
        assert set(z['labels']) == {'bkl', 'mel', 'nv'} and set(z['data_version']) == {old['data_version'], meta['data_version']}
        assert len(z['labels']) == 24 and z['x'].shape[1:] == (32, 32, 3)
    rep = cli_inproc('report', tmp_path/'b', '--out', tmp_path/'reports', '--quiet')           # the papermill report shows the accuracy matrix
    assert rep.returncode == 0, rep.stderr
    page = next((tmp_path/'reports').glob('*.html')).read_text()
    assert 'Keeping what it knew' in page and 'BWT' in page and 'test_0' in page and 'test_1' in page
    assert (tmp_path/'b'/'report'/'continual'/'accuracy_matrix.png').exists()
    bad = cli_inproc('train', *as_sets(second), '--continue-from', tmp_path/'nowhere', '--run-dir', tmp_path/'c', '--quiet')
    assert bad.returncode == 2 and 'nowhere' in bad.stderr and 'Traceback' not in bad.stderr
    bad = cli_inproc('train', *as_sets(second), '--set', 'continual.method=replay+ewk', '--continue-from', tmp_path/'a', '--run-dir', tmp_path/'c', '--quiet')
    assert bad.returncode == 2 and "did you mean 'ewc'" in bad.stderr and not (tmp_path/'c').exists()

def _shuffled(src: Path, dst: Path) -> Path:
    "A copy of a synthetic dataset's manifest with its labels permuted: data whose labels mean nothing."
    df = pd.read_csv(src/'manifest.csv')
    df['path'] = [str(src/p) for p in df.path]
    df['label'] = np.random.default_rng(0).permutation(df.label.values)
    dst.mkdir(parents=True, exist_ok=True); df.to_csv(dst/'manifest.csv', index=False)
    return dst/'manifest.csv'

@pytest.mark.slow
def test_retrain_promotes_a_good_candidate_and_rejects_one_trained_on_shuffled_labels(tmp_path, cli_inproc):
    from medtrain.config import SyntheticConfig
    from medtrain.synthetic import make_synthetic
    from medtrain.registry import Registry
    syn = SyntheticConfig(n_images=240, n_classes=2, image_size=32, majority=0.51)
    for name, seed in (('a', 1), ('b', 2), ('c_raw', 3)): make_synthetic(tmp_path/name, syn, seed=seed, progress=False)
    good, shuffled = tmp_path/'b'/'manifest.csv', _shuffled(tmp_path/'c_raw', tmp_path/'c')   # next month's cases; cases whose labels mean nothing
    common = [*FAST, 'data.size=32', 'train.bs=16', 'train.device=cpu', 'data.test_pct=0.3', 'continual.margin=0.1']
    cli_inproc('train', *as_sets(common + ['data.source=csv', f'data.path={tmp_path}/a/manifest.csv', 'train.epochs=5']),
               '--run-dir', tmp_path/'run_a', '--quiet', check=True)
    reg = tmp_path/'registry'
    cli_inproc('registry', 'register', tmp_path/'run_a', '--name', 'derm', '--no-reference', '--registry', reg, check=True)
    cli_inproc('registry', 'promote', 'derm', '1', '--registry', reg, check=True)
    ok = cli_inproc('retrain', '--name', 'derm', '--new-data', good, *as_sets(common + ['train.epochs=2', 'train.lr=1e-3']), '--out', tmp_path/'r1', '--registry', reg, '--quiet')
    res = json.loads((tmp_path/'r1'/'retrain.json').read_text())
    assert ok.returncode == 0, (ok.stderr, res['tests'], res['reasons'])
    assert Registry(reg).get('derm@production')['version'] == 2
    assert (tmp_path/'r1'/'report.md').exists() and (tmp_path/'r1'/'report.html').exists()
    bad = cli_inproc('retrain', '--name', 'derm', '--new-data', shuffled, *as_sets(common + ['train.epochs=2', 'train.lr=1e-3']), '--out', tmp_path/'r2', '--registry', reg, '--quiet')
    res = json.loads((tmp_path/'r2'/'retrain.json').read_text())
    assert bad.returncode == 6, (bad.stderr, res['tests'])                                          # RETRAIN_REJECTED_EXIT
    assert Registry(reg).get('derm@production')['version'] == 2 and Registry(reg).get('derm@3')['stage'] == 'rejected'
    assert res['reasons'] and 'REJECTED' in (tmp_path/'r2'/'report.md').read_text()
    actions = Registry(reg).history('derm').action.tolist()
    assert 'retrain-evaluate' in actions and any(a.startswith('reject: ') for a in actions)
    m = cli_inproc('evaluate', '--model-path', 'derm@2', '--registry', reg, '--out', tmp_path/'matrix', '--n-boot', '200', '--quiet')
    assert m.returncode == 0, m.stderr
    summary = json.loads((tmp_path/'matrix'/'continual.json').read_text())
    assert set(summary['accuracy']) == {'after_0', 'after_1'} and summary['bwt'] is not None and (tmp_path/'matrix'/'accuracy_matrix.png').exists()

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT/'deploy'/'github-actions'/'retrain.yml'
_keys = lambda *ks: {k: {} for k in ks}
STEP = {'type': 'object', 'additionalProperties': False, 'oneOf': [{'required': ['run']}, {'required': ['uses']}],
        'properties': _keys('id', 'name', 'if', 'uses', 'with', 'run', 'env', 'shell', 'continue-on-error', 'timeout-minutes', 'working-directory')}
JOB = {'type': 'object', 'additionalProperties': False, 'required': ['runs-on', 'steps'],
       'properties': dict(_keys('name', 'needs', 'if', 'runs-on', 'environment', 'concurrency', 'outputs', 'env', 'defaults', 'timeout-minutes',
                                'strategy', 'continue-on-error', 'container', 'services', 'permissions'), steps={'type': 'array', 'minItems': 1, 'items': STEP})}
EVENTS = _keys('schedule', 'workflow_dispatch', 'push', 'pull_request', 'workflow_call', 'repository_dispatch')
WORKFLOW_SCHEMA = {'type': 'object', 'additionalProperties': False, 'required': ['on', 'jobs'],   # the subset of SchemaStore's github-workflow schema this file uses
                   'properties': dict(_keys('name', 'run-name', 'env', 'defaults', 'concurrency', 'permissions'),
                                      on={'type': 'object', 'additionalProperties': False, 'minProperties': 1, 'properties': EVENTS},
                                      jobs={'type': 'object', 'minProperties': 1, 'additionalProperties': JOB})}

def _workflow(text=None) -> dict:
    import yaml
    wf = yaml.safe_load(text or WORKFLOW.read_text())
    if True in wf: wf['on'] = wf.pop(True)   # YAML 1.1 reads the key `on` as true
    return wf

def _workflow_errors(wf) -> list[str]:
    import jsonschema
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft202012Validator(WORKFLOW_SCHEMA).iter_errors(wf)]

def test_the_github_actions_retrain_workflow_is_valid_and_runs_real_commands():
    "deploy/github-actions/retrain.yml: valid against the workflow schema's structure, each `if` names a real step, each medtrain line parses."
    import re, shlex
    from medtrain.cli import build_parser
    from medtrain.retrain import RETRAIN_REJECTED_EXIT
    from medtrain.monitor import DRIFT_EXIT_CODE
    wf = _workflow()
    assert not _workflow_errors(wf), _workflow_errors(wf)
    steps = wf['jobs']['retrain']['steps']
    ids = {s['id'] for s in steps if 'id' in s}
    for s in steps:
        assert set(re.findall(r'steps\.([\w-]+)\.', s.get('if', ''))) <= ids, s
    commands = []
    for s in steps:
        for line in s.get('run', '').splitlines():
            words = shlex.split(line.replace('"${MODEL_NAME}', '"lesions'))
            if words[:1] == ['medtrain']:
                args = build_parser().parse_args(words[1:])   # exits (fails the test) on an unknown flag
                commands.append(words[1])
                if getattr(args, 'config', None): assert (ROOT/args.config).exists(), args.config
    assert commands == ['monitor', 'retrain']
    text = WORKFLOW.read_text()
    assert f"code == '{DRIFT_EXIT_CODE}'" in text and f'-eq {RETRAIN_REJECTED_EXIT}' in text
    broken = _workflow(text.replace('      - name: Notify\n', '      - nmae: Notify\n'))   # the check can fail
    assert any('nmae' in e for e in _workflow_errors(broken))

def test_feedback_from_predictions_gives_live_accuracy(trained_run, tmp_path, cli_inproc):
    "POST /feedback with the prediction_id of a /predict answer is stored server-side; `monitor --feedback` reports accuracy from it."
    import io, time
    from PIL import Image
    from fastapi.testclient import TestClient
    from medtrain.config import ServeConfig
    from medtrain.serve import create_app
    db = tmp_path/'feedback.sqlite'
    meta = json.loads((trained_run/'model'/'model.json').read_text())
    png = io.BytesIO(); Image.new('RGB', (32, 32), (120, 60, 30)).save(png, 'PNG')
    with TestClient(create_app(trained_run/'model', backend='torch', demo=False, limits=ServeConfig(feedback_db=db, demo=False))) as client:
        for _ in range(600):   # the model loads in the background
            if client.get('/ready').status_code == 200: break
            time.sleep(0.1)
        answers = [client.post('/predict', files={'file': ('x.png', png.getvalue())}).json() for _ in range(3)]
        assert all('prediction_id' in a for a in answers), answers
        ids = [a['prediction_id'] for a in answers]
        assert len(set(ids)) == 3
        truth = [answers[0]['top_k'][0]['label'], answers[1]['top_k'][0]['label'], next(c for c in meta['classes'] if c != answers[2]['top_k'][0]['label'])]
        for i, label in zip(ids, truth): assert client.post('/feedback', json=dict(prediction_id=i, label=label)).status_code == 200
        assert client.post('/feedback', json=dict(prediction_id='0' * 32, label=truth[0])).status_code == 404
        assert client.post('/feedback', json=dict(prediction_id=ids[0], label='not-a-class')).status_code == 422
    r = cli_inproc('monitor', '--feedback', db, '--out', tmp_path/'live')
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path/'live'/'feedback.json').read_text())
    assert res['n'] == 3 and abs(res['accuracy'] - 2 / 3) < 1e-9 and (tmp_path/'live'/'feedback.png').exists()
