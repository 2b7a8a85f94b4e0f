"""Continual learning through the CLI: `train --continue-from` with a new class, and `retrain` promoting a good candidate
and rejecting one trained on label-shuffled data (production unchanged)."""
import json
from pathlib import Path

import numpy as np, pandas as pd
import pytest

from conftest import as_sets, medtrain_inproc

FAST = ['model.arch=medcnn_small', 'augment.enabled=false', 'data.cache=memory', 'train.lr=3e-3']
COMMON = [*FAST, 'data.size=32', 'train.bs=16', 'train.device=cpu', 'data.test_pct=0.3', 'continual.margin=0.2']

@pytest.fixture(scope='module')
def first(tmp_path_factory):
    """Experience 0, trained once for the module's continue-from, resume and retrain tests: 2 classes (mel, nv), 160 images
    of 32 px, medcnn_small, 4 epochs (`run_a`); and `data3`, 60 images of 3 classes (bkl new) to continue on."""
    from medtrain.config import SyntheticConfig
    from medtrain.synthetic import make_synthetic
    d = tmp_path_factory.mktemp('continual')
    make_synthetic(d/'a', SyntheticConfig(n_images=160, n_classes=2, image_size=32, majority=0.51), seed=1, progress=False)
    make_synthetic(d/'data3', SyntheticConfig(n_images=60, n_classes=3, image_size=32, majority=0.4), seed=7, progress=False)
    medtrain_inproc('train', *as_sets(COMMON + ['data.source=csv', f'data.path={d}/a/manifest.csv', 'train.epochs=4']),
                    '--run-dir', d/'run_a', '--quiet', check=True)
    return d

def test_continue_from_adds_a_new_class_and_remembers_the_old_data(first, tmp_path, cli_inproc):
    old = json.loads((first/'run_a'/'model'/'model.json').read_text())
    second = COMMON + ['data.source=csv', f'data.path={first}/data3/manifest.csv', 'train.epochs=1', 'continual.memory=24']
    r = cli_inproc('train', *as_sets(second), '--continue-from', first/'run_a', '--run-dir', tmp_path/'b', '--quiet')
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
    bad = cli_inproc('train', *as_sets(second), '--set', 'continual.method=replay+ewk', '--continue-from', first/'run_a', '--run-dir', tmp_path/'c', '--quiet')
    assert bad.returncode == 2 and "did you mean 'ewc'" in bad.stderr and not (tmp_path/'c').exists()

class _PowerCut(Exception): pass

def test_resume_of_a_continued_run_keeps_its_continual_callbacks(first, tmp_path, cli_inproc):
    "`train --resume` of an interrupted `--continue-from` run: replay runs on, the head keeps a class the new data lacks, the experience is remembered."
    import torch
    from fastai.callback.core import Callback
    from medtrain.config import load_config
    from medtrain.continual import train_continual
    class Cut(Callback):
        order = 200   # after the checkpoint of epoch 1
        def after_epoch(self): raise _PowerCut('the power went out after epoch 1')
    df = pd.read_csv(first/'data3'/'manifest.csv')
    df.assign(path=[str(first/'data3'/p) for p in df.path])[df.label != 'nv'].to_csv(tmp_path/'no_nv.csv', index=False)   # nv: only in the old data
    cfg = load_config(overrides=COMMON + ['data.source=csv', f'data.path={tmp_path}/no_nv.csv', 'train.epochs=2', 'continual.memory=24'], environ={})
    run = tmp_path/'b'
    with pytest.raises(_PowerCut): train_continual(cfg, first/'run_a', run, progress=False, extra_cbs=[Cut()])
    assert json.loads((run/'run.json').read_text())['status'] == 'failed'
    (first/'run_a'/'model').rename(first/'run_a'/'moved')                                       # the model it continued is gone: refused, in one sentence
    try: gone = cli_inproc('train', '--resume', run, '--quiet')
    finally: (first/'run_a'/'moved').rename(first/'run_a'/'model')
    assert gone.returncode != 0 and 'no longer there' in gone.stderr and 'Traceback' not in gone.stderr
    r = cli_inproc('train', '--resume', run, '--quiet')
    assert r.returncode == 0, r.stderr
    meta = json.loads((run/'model'/'model.json').read_text())
    assert meta['classes'] == ['bkl', 'mel', 'nv']                                              # nv kept its row though the new data has none
    assert [e['experience'] for e in meta['lineage']] == [0, 1] and meta['lineage'][1]['method'] == 'replay'
    ckpt = torch.load(run/'checkpoints'/'last.pt', map_location='cpu', weights_only=True)
    assert ckpt['epoch'] == 2 and 'replay' in ckpt['callbacks']                                 # the resumed epoch replayed the memory
    with np.load(run/'model'/'continual'/'memory.npz') as z: assert 'nv' in set(z['labels'])

def _shuffled(src: Path, dst: Path) -> Path:
    """A copy of a synthetic dataset's manifest whose labels are all wrong: each class is relabelled as the next one (a
    batch labelled with the wrong code list). A random permutation leaves half of two classes right, its gradient averages
    out, and a fine-tuned candidate can come out unharmed: nothing for the gate to reject."""
    df = pd.read_csv(src/'manifest.csv')
    df['path'] = [str(src/p) for p in df.path]
    classes = sorted(df.label.unique())
    df['label'] = df.label.map({c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)})
    dst.mkdir(parents=True, exist_ok=True); df.to_csv(dst/'manifest.csv', index=False)
    return dst/'manifest.csv'

@pytest.mark.slow
def test_retrain_promotes_a_good_candidate_and_rejects_one_trained_on_shuffled_labels(first, tmp_path, cli_inproc):
    from medtrain.config import SyntheticConfig
    from medtrain.synthetic import make_synthetic
    from medtrain.registry import Registry
    syn = SyntheticConfig(n_images=160, n_classes=2, image_size=32, majority=0.51)
    for name, seed in (('b', 2), ('c_raw', 3)): make_synthetic(tmp_path/name, syn, seed=seed, progress=False)
    good, shuffled = tmp_path/'b'/'manifest.csv', _shuffled(tmp_path/'c_raw', tmp_path/'c')   # next month's cases; cases whose labels are wrong
    reg = tmp_path/'registry'
    cli_inproc('registry', 'register', first/'run_a', '--name', 'derm', '--no-reference', '--registry', reg, check=True)
    cli_inproc('registry', 'promote', 'derm', '1', '--registry', reg, check=True)
    ok = cli_inproc('retrain', '--name', 'derm', '--new-data', good, *as_sets(COMMON + ['train.epochs=2', 'train.lr=1e-3']), '--out', tmp_path/'r1', '--registry', reg, '--quiet')
    res = json.loads((tmp_path/'r1'/'retrain.json').read_text())
    assert ok.returncode == 0, (ok.stderr, res['tests'], res['reasons'])
    assert Registry(reg).get('derm@production')['version'] == 2
    assert (tmp_path/'r1'/'report.md').exists() and (tmp_path/'r1'/'report.html').exists()
    bad = cli_inproc('retrain', '--name', 'derm', '--new-data', shuffled, *as_sets(COMMON + ['train.epochs=4', 'train.lr=3e-3']), '--out', tmp_path/'r2', '--registry', reg, '--quiet')   # long enough to learn the wrong labels
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
