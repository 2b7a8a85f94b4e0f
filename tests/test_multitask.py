"Several targets at once (issue I): `medtrain train` on a CSV with a multiclass, a binary, a multilabel and a regression task."
import json
import numpy as np, pandas as pd
import pytest
from PIL import Image
from conftest import as_sets

TASKS = ('[{name: diagnosis, column: dx, kind: multiclass}, {name: malignant, column: malignant, kind: binary}, '
         '{name: findings, column: findings, kind: multilabel}, {name: thickness, column: thick_mm, kind: regression}]')

@pytest.fixture(scope='module')
def lesions(tmp_path_factory):
    "A lesion CSV from the synthetic generator: four task columns with blank cells, and two rows with no target at all."
    from medtrain.data import make_synthetic
    from medtrain.config import SyntheticConfig
    d = tmp_path_factory.mktemp('lesions')
    syn = make_synthetic(d/'syn', SyntheticConfig(n_images=96, image_size=32, majority=0.4), seed=0, progress=False)
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

def test_train_four_task_kinds_end_to_end(cli, lesions, tmp_path):
    r = cli('train', *_sets(lesions, 'train.task_weighting=uncertainty', 'train.early_stopping={monitor: thickness_loss, patience: 5}'),
            '--run-dir', tmp_path/'run', check=True)   # early stopping watches one task's loss (fastai asserts the column exists)
    rd = tmp_path/'run'
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
