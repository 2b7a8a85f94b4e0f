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
