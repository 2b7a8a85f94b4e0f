"The runs index through the CLI: every run is recorded, listed and compared."
import json, sqlite3

def test_runs_are_indexed_listed_and_compared(cli, tmp_path, tiny_sets):
    runs = tmp_path/'runs'
    cli('train', *tiny_sets, '--run-dir', runs/'a', '--quiet', check=True)
    cli('train', *tiny_sets, '--set', 'train.lr=0.01', '--run-dir', runs/'b', '--quiet', check=True)
    failed = cli('train', *tiny_sets, '--set', 'model.arch=resnet1888', '--run-dir', runs/'c', '--quiet')
    assert failed.returncode == 2
    with sqlite3.connect(runs/'runs.sqlite') as con:
        rows = dict(con.execute("SELECT id, status FROM runs").fetchall())
    assert rows == {'a': 'finished', 'b': 'finished', 'c': 'failed'}
    r = cli('runs', 'list', '--runs-dir', runs, check=True)
    assert all(i in r.stdout for i in ('a ', 'b ', 'failed')) and 'macro_f1' in r.stdout
    r = cli('runs', 'compare', 'a', 'b', '--runs-dir', runs, check=True)
    assert 'train.lr' in r.stdout and 'data.path' not in r.stdout          # only what differs
    assert (runs/'compare.png').exists()
    m = json.loads((runs/'a'/'metrics.json').read_text())
    assert f"{m['accuracy']:.6f}"[:5] in r.stdout
    assert cli('runs', 'compare', 'a', 'zzz', '--runs-dir', runs).returncode != 0

def test_default_run_dirs_never_collide(tmp_path, monkeypatch):
    "Runs started in the same second (the clock is frozen here) each get their own folder, created atomically."
    import datetime as dt, threading
    import medtrain.train as mt
    from medtrain.config import load_config
    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None): return dt.datetime(2026, 1, 2, 3, 4, 5)
    monkeypatch.setattr(mt, 'datetime', Frozen)
    cfg = load_config(overrides=[f'tracking.runs_dir={tmp_path}/runs', 'model.arch=resnet18'], environ={})
    made = []
    threads = [threading.Thread(target=lambda: made.append(mt.new_run_dir(cfg).path)) for _ in range(6)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert len(set(made)) == 6 and all(p.is_dir() and p.name.startswith('20260102-030405-resnet18') for p in made), made
