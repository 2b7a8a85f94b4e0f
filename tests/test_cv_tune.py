"`medtrain tune` end to end on tiny synthetic data (the 2-fold CV and the no-test-split spy run in nbs/08_tune.ipynb)."
import json, sqlite3
import pandas as pd, yaml
from conftest import medtrain, tiny_config, as_sets

def _sets(tmp_path, *extra):
    return as_sets(tiny_config(tmp_path, 'model.arch=medcnn_small', *extra))

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


def test_two_workers_on_one_sqlite_study_draw_different_trials(tmp_path):
    "Two `medtrain tune` processes with the same command (default --seed 0) share one SQLite study, as machines would."
    import os, subprocess, sys
    space = tmp_path/'space.yaml'
    space.write_text(yaml.safe_dump({'train.lr': {'low': 1e-4, 'high': 1e-2, 'log': True}, 'train.wd': {'low': 0.0, 'high': 0.1}}))
    storage = f"sqlite:///{tmp_path/'shared.db'}"
    def worker(w):   # each machine has its own data copy and output folder; only the study is shared
        sets = as_sets(tiny_config(None, 'data.synthetic.n_images=60', 'data.synthetic.image_size=16', 'data.size=16',
                                   'train.epochs=1', 'model.arch=medcnn_small', f'data.path={tmp_path}/data-{w}'))
        return subprocess.Popen([sys.executable, '-m', 'medtrain', 'tune', '--space', space, '--trials', '2', '--out', tmp_path/f'tune-{w}',
                                 '--storage', storage, '--study-name', 'shared', '--quiet', *sets],
                                env={**os.environ, 'MPLBACKEND': 'Agg'}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = [worker(w) for w in 'ab']
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    import optuna
    trials = optuna.load_study(study_name='shared', storage=storage).trials
    assert len(trials) == 4 and sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in trials)
    drawn = [(t.params['train.lr'], t.params['train.wd']) for t in trials]
    assert len(set(drawn)) == 4, drawn                      # no worker repeated another's draw
    run_dirs = sorted(t.user_attrs['run_dir'] for t in trials)
    assert len(set(run_dirs)) == 4                          # each trial ran once, in one worker's folder
    for w in 'ab':
        with sqlite3.connect(tmp_path/f'tune-{w}'/'trials'/'runs.sqlite') as con: n = con.execute('select count(*) from runs').fetchone()[0]
        assert n == sum(d.startswith(str(tmp_path/f'tune-{w}')) for d in run_dirs) == 2
