"`medtrain tune` end to end on tiny synthetic data (the 2-fold CV and the no-test-split spy run in nbs/08_tune.ipynb)."
import json, sqlite3
import pandas as pd, yaml
from conftest import medtrain, TINY

def _sets(tmp_path, *extra):
    return [a for kv in TINY + [f'data.path={tmp_path}/data', 'model.arch=medcnn_small', *extra] for a in ('--set', kv)]

def test_tune_three_trials(tmp_path):
    space = tmp_path/'space.yaml'
    space.write_text(yaml.safe_dump({'train.lr': {'low': 1e-3, 'high': 1e-2, 'log': True}, 'train.opt': ['adam', 'adamw', 'sgd'],
                                     'train.wd': {'low': 0.0, 'high': 0.1}, 'augment.mixup': {'low': 0.0, 'high': 0.4},
                                     'augment.strength': {'low': 0.0, 'high': 1.0}, 'train.bs': [16, 32]}))
    storage = f"sqlite:///{tmp_path/'shared.db'}"   # any database URL: several machines can share the study
    r = medtrain('tune', '--space', space, '--search', 'tpe', '--trials', '3', '--out', tmp_path/'tune', '--storage', storage,
                 '--study-name', 'tiny', '--quiet', *_sets(tmp_path), check=True)
    assert 'best config' in r.stdout, r.stdout
    import optuna
    study = optuna.load_study(study_name='tiny', storage=storage)
    assert len(study.trials) == 3
    with sqlite3.connect(tmp_path/'tune'/'trials'/'runs.sqlite') as con:   # every trial is a tracked run
        statuses = [s for (s,) in con.execute('select status from runs')]
    assert len(statuses) == 3 and set(statuses) <= {'finished', 'pruned'}
    from medtrain.config import load_config
    best = load_config(tmp_path/'tune'/'best.yaml', environ={})   # ready for `medtrain train --config best.yaml`
    assert best.train.opt == study.best_params['train.opt'] and best.data.source == 'synthetic'
    assert abs(best.train.lr - study.best_params['train.lr']) < 1e-12
