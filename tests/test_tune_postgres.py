"""Distributed tuning for real: two `medtrain tune` worker processes share one Optuna study in a PostgreSQL server,
as the tuning pods of deploy/k8s do. The server is a throw-away cluster (initdb + pg_ctl) in a temp folder on a free
local port, removed afterwards; `make postgres` installs Debian's server when it is missing. No mock."""
import contextlib, json, os, pwd, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path
import pytest, yaml
from conftest import TINY

def _pg_bindir() -> Path:
    "The newest installed server's bin folder (Debian keeps initdb/pg_ctl in /usr/lib/postgresql/N/bin, off PATH)."
    found = sorted(Path('/usr/lib/postgresql').glob('*/bin/pg_ctl'), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found: return found[-1].parent
    if shutil.which('pg_ctl') and shutil.which('initdb'): return Path(shutil.which('pg_ctl')).parent
    pytest.fail("PostgreSQL's server (initdb, pg_ctl) is not installed: run `make postgres` (apt-get install postgresql)")

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture
def postgres_url():
    "postgresql:// URL of a fresh server with an empty database `optuna`; stopped and deleted afterwards."
    import psycopg   # the [tune-db] extra (SQLAlchemy 2.1's driver for postgresql:// URLs); an ImportError fails the test, as it should
    bindir = _pg_bindir()
    # PostgreSQL refuses to run as root: as root, run it as the `postgres` user of Debian's package (or nobody),
    # in a folder under /tmp that user can reach (the test's TMPDIR is private to root)
    as_root = os.geteuid() == 0
    user = next((u for u in ('postgres', 'nobody') if _has_user(u)), None) if as_root else None
    if as_root and user is None: pytest.fail("running as root and neither a postgres nor a nobody user exists to run the server")
    run_as = ['runuser', '-u', user, '--'] if as_root else []
    base = Path(tempfile.mkdtemp(prefix='medtrain-pg-', dir='/tmp' if as_root else None))
    if as_root: shutil.chown(base, user)
    port = _free_port()
    log = base/'server.log'
    def pg(*args, timeout=60):
        return subprocess.run(run_as + [str(bindir/args[0]), *map(str, args[1:])], capture_output=True, text=True, timeout=timeout)
    try:
        r = pg('initdb', '-D', base/'data', '-U', 'medtrain', '--auth=trust', '-E', 'UTF8', '--no-sync')
        assert r.returncode == 0, f"initdb failed (as {user or 'this user'}):\n{r.stdout}\n{r.stderr}"
        r = pg('pg_ctl', '-D', base/'data', '-l', log, '-w', '-t', '60', '-o', f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off", 'start', timeout=90)
        if r.returncode:
            pytest.fail(f"the PostgreSQL server did not start on port {port}:\n{r.stdout}\n{r.stderr}\n{log.read_text() if log.exists() else ''}")
        with psycopg.connect(host='127.0.0.1', port=port, user='medtrain', dbname='postgres', autocommit=True) as con:
            con.execute('CREATE DATABASE optuna')
        yield f'postgresql://medtrain@127.0.0.1:{port}/optuna'
    finally:
        if (base/'data'/'postmaster.pid').exists(): pg('pg_ctl', '-D', base/'data', '-m', 'immediate', '-w', 'stop')
        shutil.rmtree(base, ignore_errors=True)
    assert not base.exists()

def _measured(run_dir: Path) -> float:
    "The validation macro-F1 a trial's run recorded (what `medtrain tune --metric macro_f1` optimises)."
    return float(json.loads((run_dir/'metrics.json').read_text())['macro_f1'])

def _has_user(name) -> bool:
    try: pwd.getpwnam(name); return True
    except KeyError: return False

def test_two_workers_share_one_study_in_postgres(postgres_url, tmp_path):
    import optuna
    space = tmp_path/'space.yaml'
    space.write_text(yaml.safe_dump({'train.lr': {'low': 1e-3, 'high': 3e-2, 'log': True}, 'train.opt': ['adam', 'adamw', 'sgd'],
                                     'train.wd': {'low': 0.0, 'high': 0.1}}))
    trials_each, workers = 2, 2
    procs = []
    # as the indexed Job's pods: same study, own folder, sampler seed = the worker's index (with the same --seed, today's
    # `medtrain tune` makes both workers draw identical trials: seen here, being fixed in tune.py separately)
    for i in range(workers):
        sets = TINY + ['train.epochs=1', 'model.arch=medcnn_small', f'data.path={tmp_path}/data{i}']   # own copy of the synthetic data: no two writers
        argv = [sys.executable, '-m', 'medtrain', 'tune', '--space', space, '--trials', trials_each, '--storage', postgres_url,
                '--study-name', 'shared', '--seed', i, '--out', tmp_path/f'worker-{i}', '--quiet', *[a for kv in sets for a in ('--set', kv)]]
        procs.append(subprocess.Popen(list(map(str, argv)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env={**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1'}))
    outs = [p.communicate(timeout=300) for p in procs]
    for i, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"worker {i} exited {p.returncode}\n{out}\n{err}"

    study = optuna.load_study(study_name='shared', storage=postgres_url)
    trials = study.trials
    assert len(trials) == workers * trials_each, f"{len(trials)} trials in the study, expected {workers * trials_each}"
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [t.state for t in trials]
    # every trial ran exactly once, in one worker: its run dir exists in that worker's folder, and no worker has a run the study lacks
    run_dirs = [Path(t.user_attrs['run_dir']) for t in trials]
    on_disk = sorted(d for i in range(workers) for d in (tmp_path/f'worker-{i}'/'trials').glob('trial-*'))
    assert sorted(run_dirs) == on_disk, f"study run dirs {run_dirs} != worker folders {on_disk}"
    per_worker = [sum(d.parents[1] == tmp_path/f'worker-{i}' for d in run_dirs) for i in range(workers)]
    assert per_worker == [trials_each] * workers, per_worker
    for d in run_dirs: assert json.loads((d/'run.json').read_text())['status'] == 'finished', d
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params), f"two trials drew the same hyperparameters: {params}"
    # the study's best is the best of what the workers measured, and the worker that finished last reports it
    measured = {t.number: _measured(Path(t.user_attrs['run_dir'])) for t in trials}   # from each run dir, not from the study
    assert all(abs(measured[t.number] - t.value) < 1e-9 for t in trials), (measured, [t.value for t in trials])
    assert study.best_value == max(measured.values()) and measured[study.best_trial.number] == study.best_value
    last = max(range(workers), key=lambda i: (tmp_path/f'worker-{i}'/'best.json').stat().st_mtime)
    best = json.loads((tmp_path/f'worker-{last}'/'best.json').read_text())
    assert best['value'] == study.best_value and best['trial'] == study.best_trial.number, (best, study.best_trial.number)
    assert best['storage'] == postgres_url and '@' in postgres_url and ':' not in postgres_url.split('//')[1].split('@')[0]
    best_yaml = yaml.safe_load((tmp_path/f'worker-{last}'/'best.yaml').read_text())
    assert best_yaml['train']['opt'] == study.best_params['train.opt']
