"Several targets at once (issue I): `medtrain train` on a CSV with a multiclass, a binary, a multilabel and a regression task."
import json
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from PIL import Image
from conftest import as_sets, medtrain

TASKS = ('[{name: diagnosis, column: dx, kind: multiclass}, {name: malignant, column: malignant, kind: binary}, '
         '{name: findings, column: findings, kind: multilabel}, {name: thickness, column: thick_mm, kind: regression}]')

@pytest.fixture(scope='module')
def lesions(tmp_path_factory):
    "A lesion CSV from the synthetic generator: four task columns with blank cells, and two rows with no target at all."
    from medtrain.data import make_synthetic
    from medtrain.config import SyntheticConfig
    d = tmp_path_factory.mktemp('lesions')
    syn = make_synthetic(d/'syn', SyntheticConfig(n_images=64, image_size=32, majority=0.4), seed=0, progress=False)
    dark = np.array([(np.asarray(Image.open(p).convert('L')) < 110).mean() for p in syn.path])
    rows = pd.DataFrame(dict(path=syn.path, patient_id=syn.patient_id, dx=syn.label,
                             malignant=np.where(syn.label.isin(['mel', 'bcc', 'akiec']), 'yes', 'no'),
                             findings=['|'.join(f for f, on in (('dark', x > 0.2), ('small', x < 0.1)) if on) for x in dark],
                             thick_mm=np.round(dark * 10, 2).astype(object)))
    rows.loc[rows.index % 5 == 0, 'thick_mm'] = ''           # a thickness is often unknown: that loss is masked
    rows.loc[rows.index % 7 == 0, 'malignant'] = ''
    rows.loc[rows.index[:2], ['dx', 'malignant', 'findings', 'thick_mm']] = ''   # no target at all: reported like a bad file
    rows.to_csv(d/'lesions.csv', index=False)
    return d/'lesions.csv'

def _sets(csv, *extra):
    return as_sets(['data.source=csv', f'data.path={csv}', f'data.tasks={TASKS}', 'data.size=32', 'model.arch=medcnn_small',
                    'train.epochs=2', 'train.bs=16', 'train.device=cpu', *extra])

@pytest.fixture(scope='module')
def mt_run(lesions, tmp_path_factory):
    "One four-task run (CLI, 2 epochs) shared by the train, evaluate, serve and predict tests."
    rd = tmp_path_factory.mktemp('mtrun')/'run'
    r = medtrain('train', *_sets(lesions, 'train.task_weighting=uncertainty', 'train.early_stopping={monitor: thickness_loss, patience: 5}'),
                 '--run-dir', rd, check=True)   # early stopping watches one task's loss (fastai asserts the column exists)
    return rd, r

def test_train_four_task_kinds_end_to_end(mt_run):
    rd, r = mt_run
    assert 'validation: diagnosis macro_f1' in r.stdout and 'thickness mae' in r.stdout, r.stdout
    m = json.loads((rd/'metrics.json').read_text())
    assert {k: v['kind'] for k, v in m['tasks'].items()} == dict(diagnosis='multiclass', malignant='binary', findings='multilabel', thickness='regression')
    assert 'sensitivity' in m['tasks']['malignant']['binary'] and 'macro_auc' in m['tasks']['findings'] and 'r2' in m['tasks']['thickness']
    assert m['tasks']['thickness']['n'] < m['tasks']['diagnosis']['n'] == m['n']     # blank thickness cells are not scored
    hist = pd.read_csv(rd/'history.csv')
    assert len(hist) == 2 and {f'{t}_{c}' for t in m['tasks'] for c in ('loss', 'weight')} <= set(hist.columns)
    assert (hist.filter(like='_weight').iloc[-1] != 1).all()          # uncertainty weighting: every task's weight was learned
    meta = json.loads((rd/'model'/'model.json').read_text())
    assert [t['name'] for t in meta['tasks']] == list(m['tasks']) and meta['tasks'][3]['std'] > 0
    bad = pd.read_csv(rd/'bad_files.csv')
    assert (bad.problem == 'no label').sum() == 2
    sp = pd.read_csv(rd/'splits.csv')
    assert sp.groupby('patient_id').split.nunique().max() == 1 and (rd/'plots'/'task_losses.png').exists()

def test_multitask_config_mistakes_exit_with_one_line(cli_inproc, lesions, tmp_path):
    r = cli_inproc('train', *_sets(lesions), '--set', f'data.tasks={TASKS.replace("kind: regression", "kind: regression, loss: hubber")}',
                   '--run-dir', tmp_path/'a')
    assert r.returncode == 2 and "data.tasks thickness: loss: unknown regression task loss 'hubber'; did you mean 'huber'" in r.stderr, r.stderr
    assert not (tmp_path/'a').exists()                                                # refused before a run dir is made
    r = cli_inproc('train', *_sets(lesions, 'augment.mixup=0.4'), '--run-dir', tmp_path/'b')
    assert r.returncode == 2 and 'augment.mixup: not supported with data.tasks yet' in r.stderr
    r = cli_inproc('train', *_sets(lesions), '--set', f'data.tasks={TASKS.replace("column: thick_mm", "column: thickness_mm")}', '--run-dir', tmp_path/'c')
    assert r.returncode == 3 and 'lacks column(s) thickness_mm' in r.stderr, r.stderr

KINDS = dict(diagnosis='multiclass', malignant='binary', findings='multilabel', thickness='regression')

def test_evaluate_a_section_per_task_with_intervals(mt_run, lesions, cli_inproc, tmp_path):
    rd, _ = mt_run
    r = cli_inproc('evaluate', '--model-path', rd/'model', '--out', tmp_path/'ev', '--n-boot', '50', '-q')   # default: the run's test.csv
    assert r.returncode == 0, r.stderr
    assert 'diagnosis macro_f1' in r.stdout and 'thickness mae' in r.stdout, r.stdout
    m = json.loads((tmp_path/'ev'/'metrics.json').read_text())
    assert {k: v['kind'] for k, v in m['tasks'].items()} == KINDS and m['n'] == len(pd.read_csv(rd/'test.csv'))
    t = m['tasks']
    assert len(t['diagnosis']['confusion_matrix']) == len(t['diagnosis']['per_class']) and t['malignant']['binary']['positive'] == 'yes'
    assert set(t['findings']['per_label']) == {'dark', 'small'} and all('auc' in v and 'f1' in v for v in t['findings']['per_label'].values())
    assert t['thickness']['n'] < t['diagnosis']['n'] and {'mae', 'rmse', 'r2'} <= set(t['thickness'])
    for name, keys in dict(diagnosis=['balanced_accuracy', 'roc_auc'], malignant=['roc_auc'], findings=['macro_auc', 'micro_f1'], thickness=['mae', 'r2']).items():
        for k in keys: lo, hi = t[name]['ci95'][k]; assert lo <= t[name][k] <= hi or np.isclose(t[name][k], lo) or np.isclose(t[name][k], hi), (name, k)
    page = (tmp_path/'ev'/'report.html').read_text()
    assert all(f'Task {n} ({k}' in page for n, k in KINDS.items()) and page.count('<img') >= 4
    assert (tmp_path/'ev'/'plots'/'thickness'/'scatter.png').exists() and (tmp_path/'ev'/'plots'/'diagnosis'/'confusion_matrix.png').exists()
    preds = pd.read_csv(tmp_path/'ev'/'predictions.csv')
    assert {'diagnosis_pred', 'malignant_prob_yes', 'findings_pred', 'thickness_value'} <= set(preds.columns)
    r = cli_inproc('evaluate', '--model-path', rd/'model', '--test-data', lesions, '--target-sensitivity', '0.9', '--out', tmp_path/'ts')
    assert r.returncode == 2 and 'not supported for a multi-task model yet' in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_predict_writes_a_column_group_per_task(mt_run, lesions, cli_inproc, tmp_path):
    rd, _ = mt_run
    r = cli_inproc('predict', '--model', rd/'model', '--input', rd/'test.csv', '--output', tmp_path/'p.csv', '--backend', 'torch', '-q')
    assert r.returncode == 0, r.stderr
    p = pd.read_csv(tmp_path/'p.csv')
    meta = json.loads((rd/'model'/'model.json').read_text())
    dx = next(t for t in meta['tasks'] if t['name'] == 'diagnosis')
    assert list(p.columns[:2 + len(dx['vocab'])]) == ['path', 'diagnosis_pred'] + [f'diagnosis_prob_{c}' for c in dx['vocab']]
    assert {'malignant_pred', 'malignant_prob_yes', 'findings_prob_dark', 'findings_prob_small', 'thickness_value'} <= set(p.columns)
    np.testing.assert_allclose(p.filter(like='diagnosis_prob_').sum(1), 1, atol=1e-4)

def test_serve_answers_per_task_typed_and_equal_to_the_learner(mt_run, tmp_path):
    "`medtrain serve` (ONNX, exported into the cache with parity): typed per task in OpenAPI, and the same answers as the trained model on the training pipeline."
    import httpx, torch
    from test_serve import _serving
    from medtrain.multitask import load_multitask_model, multitask_test_dl, predict_outputs
    rd, _ = mt_run
    test = pd.read_csv(rd/'test.csv').head(4)
    model, meta = load_multitask_model(rd/'model')
    out, _ = predict_outputs(model, multitask_test_dl(test, model.taskset, meta, bs=4), progress=False)   # fastai's pipeline, as in training
    expected = model.taskset.decode(out)
    with _serving(tmp_path, 'mt', ['--model-path', str(rd/'model'), '--no-demo']) as (url, log):
        schema = httpx.get(url + '/openapi.json').json()
        answers = [httpx.post(url + '/predict', files={'file': (Path(p).name, Path(p).read_bytes())}, timeout=30) for p in test.path]
    defs = schema['components']['schemas']
    props = defs['TaskAnswers']['properties']
    assert {n: props[n]['$ref'].rsplit('/', 1)[1] for n in props} == dict(diagnosis='MulticlassAnswer', malignant='BinaryAnswer',
                                                                        findings='MultilabelAnswer', thickness='RegressionAnswer')
    assert schema['paths']['/predict']['post']['responses']['200']['content']['application/json']['schema']['$ref'].endswith('/MultiTaskPrediction')
    assert 'value' in defs['RegressionAnswer']['properties'] and 'labels' in defs['MultilabelAnswer']['properties']
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        a = r.json()['tasks']
        assert set(a) == set(KINDS)
        np.testing.assert_allclose(list(a['diagnosis']['probabilities'].values()), expected['diagnosis'][i].numpy(), atol=1e-4)
        np.testing.assert_allclose(a['malignant']['probability'], float(expected['malignant'][i, 0]), atol=1e-4)
        np.testing.assert_allclose(list(a['findings']['probabilities'].values()), expected['findings'][i].numpy(), atol=1e-4)
        np.testing.assert_allclose(a['thickness']['value'], float(expected['thickness'][i, 0]), rtol=1e-4, atol=1e-4)

def test_report_notebook_shows_every_task(mt_run, tmp_path):
    "`medtrain report RUN_DIR` (the papermill evaluate notebook) on a multi-task run: a section per task with its plots."
    rd, _ = mt_run
    from medtrain.evaluate import run_report   # `medtrain report` is this call; in process, with fewer bootstrap resamples
    run_report(rd, tmp_path/'reports', progress=False, n_boot=50)
    page = (tmp_path/'reports'/f'{rd.name}-evaluate.html').read_text()
    for name, kind in KINDS.items(): assert f'Task <code>{name}</code> ({kind},' in page, name
    assert page.count('<img') >= 6 and 'Traceback' not in page
