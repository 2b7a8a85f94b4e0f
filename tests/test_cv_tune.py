"`medtrain cv` and `medtrain tune` end to end on tiny synthetic data."
import json, sqlite3
import pandas as pd, yaml
from conftest import medtrain, TINY

def _sets(tmp_path, *extra):
    return [a for kv in TINY + [f'data.path={tmp_path}/data', 'model.arch=medcnn_small', *extra] for a in ('--set', kv)]

def test_cv_two_folds_with_ensemble(tmp_path):
    r = medtrain('cv', '--folds', '2', '--ensemble', '--out', tmp_path/'cv', '--quiet', *_sets(tmp_path, 'train.epochs=1'), check=True)
    assert 'mean ± std' in r.stdout and 'ensemble (test)' in r.stdout, r.stdout
    folds = pd.read_csv(tmp_path/'cv'/'folds.csv')
    oof = pd.read_csv(tmp_path/'cv'/'oof_predictions.csv')
    assert sorted(oof.path) == sorted(folds[folds.fold >= 0].path)          # each non-test image predicted once
    assert set(oof.fold) == {0, 1}
    table = pd.read_csv(tmp_path/'cv'/'cv_metrics.csv', index_col=0)
    assert list(table.index) == ['0', '1', 'mean', 'std']
    assert abs(table.loc['mean', 'accuracy'] - table.loc[['0', '1'], 'accuracy'].mean()) < 1e-9
    ens = json.loads((tmp_path/'cv'/'ensemble'/'metrics.json').read_text())
    assert ens['n'] == (folds.split == 'test').sum() and len(ens['single_models']) == 2

def test_tune_three_trials(tmp_path):
    space = tmp_path/'space.yaml'
    space.write_text(yaml.safe_dump({'train.lr': {'low': 1e-3, 'high': 1e-2, 'log': True}, 'train.opt': ['adam', 'adamw', 'sgd'],
                                     'train.wd': {'low': 0.0, 'high': 0.1}, 'augment.mixup': {'low': 0.0, 'high': 0.4},
                                     'augment.strength': {'low': 0.0, 'high': 1.0}, 'train.bs': [16, 32]}))
    r = medtrain('tune', '--space', space, '--search', 'tpe', '--trials', '3', '--out', tmp_path/'tune', '--quiet', *_sets(tmp_path), check=True)
    assert 'best config' in r.stdout, r.stdout
    import optuna
    study = optuna.load_study(study_name='medtrain', storage=f"sqlite:///{tmp_path/'tune'/'study.db'}")
    assert len(study.trials) == 3
    with sqlite3.connect(tmp_path/'tune'/'trials'/'runs.sqlite') as con:   # every trial is a tracked run
        statuses = [s for (s,) in con.execute('select status from runs')]
    assert len(statuses) == 3 and set(statuses) <= {'finished', 'pruned'}
    best = yaml.safe_load((tmp_path/'tune'/'best.yaml').read_text())
    assert best['train']['opt'] == study.best_params['train.opt'] and best['data']['source'] == 'synthetic'
    # the best config is ready for `medtrain train --config`: it validates (the --set only makes the check fast to fail)
    bad = medtrain('train', '--config', tmp_path/'tune'/'best.yaml', '--set', 'train.epochs=0')
    assert bad.returncode == 2 and 'train.epochs' in bad.stderr
    # a second call continues the same study (shared storage)
    medtrain('tune', '--space', space, '--search', 'random', '--trials', '1', '--out', tmp_path/'tune', '--quiet', *_sets(tmp_path, 'train.epochs=1'), check=True)
    assert len(optuna.load_study(study_name='medtrain', storage=f"sqlite:///{tmp_path/'tune'/'study.db'}").trials) == 4

def test_tune_bad_space_is_a_clear_error(tmp_path):
    space = tmp_path/'space.yaml'; space.write_text("train.lrr: [0.1]\n")
    r = medtrain('tune', '--space', space, '--trials', '1', '--out', tmp_path/'t', *_sets(tmp_path))
    assert r.returncode == 2 and 'train.lrr' in r.stderr and 'Traceback' not in r.stderr
