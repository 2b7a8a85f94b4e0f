"The registry through the CLI: register a trained run, promote, roll back, and use NAME@STAGE where a model path goes."
import json

from conftest import medtrain_inproc as cli_inproc


def test_register_promote_rollback_and_references(trained_run, tmp_path, monkeypatch):
    reg = ['--registry', tmp_path/'reg']
    for _ in range(2): cli_inproc('registry', 'register', trained_run, '--name', 'lesions', '--no-reference', *reg, check=True)
    assert cli_inproc('registry', 'promote', 'lesions', '1', *reg, check=True).stdout.strip() == 'lesions@v1 is now production'
    cli_inproc('registry', 'promote', 'lesions', '2', '--stage', 'production', *reg, check=True)
    listing = cli_inproc('registry', 'list', *reg, check=True).stdout
    assert 'archived' in listing and 'production' in listing
    show = json.loads(cli_inproc('registry', 'show', 'lesions@production', *reg, check=True).stdout)
    assert show['version'] == 2 and show['metrics'] == json.loads((trained_run/'metrics.json').read_text())
    assert show['git_commit'] == json.loads((trained_run/'run.json').read_text())['git_commit']
    assert 'lesions@v1 is production again' in cli_inproc('registry', 'rollback', 'lesions', *reg, check=True).stdout
    # a registry reference is accepted wherever a model path is: evaluate the production model by name
    monkeypatch.setenv('MEDTRAIN_REGISTRY', str(tmp_path/'reg'))
    r = cli_inproc('evaluate', '--model-path', 'lesions@production', '--test-data', trained_run/'test.csv', '--out', tmp_path/'ev', '--quiet', check=True)
    assert json.loads((tmp_path/'ev'/'metrics.json').read_text())['n'] == len(open(trained_run/'test.csv').readlines()) - 1
    bad = cli_inproc('evaluate', '--model-path', 'lesions@staging', '--test-data', trained_run/'test.csv')
    assert bad.returncode == 2 and 'no version of lesions is in stage staging' in bad.stderr and 'Traceback' not in bad.stderr
    bad = cli_inproc('registry', 'promote', 'lesions', '7', *reg)
    assert bad.returncode == 2 and 'lesions@7: no such version' in bad.stderr


def test_register_recovers_from_interrupted_registrations(trained_run, tmp_path):
    "A killed register's `.incoming-*` folder is removed, a `vN` folder without its index row is kept and skipped."
    import fcntl, os, time
    reg = ['--registry', tmp_path/'reg']
    cli_inproc('registry', 'register', trained_run, '--name', 'm', '--no-reference', *reg, check=True)
    dead, old, running = (tmp_path/'reg'/'m'/f'.incoming-{c * 12}' for c in 'abc')
    for d in (dead, old, running): (d/'model').mkdir(parents=True); (d/'model'/'model.safetensors').write_bytes(b'half')
    (dead/'.lock').touch()                                         # killed: nobody holds its lock any more
    os.utime(old, (time.time() - 2 * 86400,) * 2)                  # left by an older medtrain, days ago, no lock
    held = open(running/'.lock', 'w'); fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)   # a register in progress elsewhere
    (tmp_path/'reg'/'m'/'v2'/'model').mkdir(parents=True)          # killed after the rename, before the commit
    (tmp_path/'reg'/'m'/'v2'/'model'/'notes.txt').write_text('mine')
    try:
        r = cli_inproc('registry', 'register', trained_run, '--name', 'm', '--no-reference', *reg)
        assert r.returncode == 0 and 'registered m@v3' in r.stdout, r.stderr
        assert not dead.exists() and not old.exists() and running.exists()
        assert (tmp_path/'reg'/'m'/'v2'/'model'/'notes.txt').read_text() == 'mine'   # not ours to delete
        assert json.loads(cli_inproc('registry', 'show', 'm@latest', *reg, check=True).stdout)['version'] == 3
        assert sorted(p.name for p in (tmp_path/'reg'/'m'/'v3').iterdir()) == ['model', 'version.json']
    finally: held.close()


def test_rollback_walks_back_the_production_history(trained_run, tmp_path):
    reg = ['--registry', tmp_path/'reg']
    for v in (1, 2, 3): cli_inproc('registry', 'register', trained_run, '--name', 'm', '--no-reference', *reg, check=True)
    for v in (1, 2, 3): cli_inproc('registry', 'promote', 'm', v, *reg, check=True)
    assert 'm@v2 is production again' in cli_inproc('registry', 'rollback', 'm', *reg, check=True).stdout
    assert 'm@v1 is production again' in cli_inproc('registry', 'rollback', 'm', *reg, check=True).stdout
    assert json.loads(cli_inproc('registry', 'show', 'm@production', *reg, check=True).stdout)['version'] == 1
    last = cli_inproc('registry', 'rollback', 'm', *reg)
    assert last.returncode == 2 and 'nothing to roll back to' in last.stderr and 'Traceback' not in last.stderr
    assert json.loads(cli_inproc('registry', 'show', 'm@production', *reg, check=True).stdout)['version'] == 1


def test_registry_names_match_the_whole_string(trained_run, tmp_path):
    reg = ['--registry', tmp_path/'reg']
    for name in ('nl\n', 'ok\nx', 'a/b'):
        r = cli_inproc('registry', 'register', trained_run, '--name', name, '--no-reference', *reg)
        assert r.returncode == 2 and 'use letters' in r.stderr, (name, r.stderr)
    assert not [p for p in (tmp_path/'reg').iterdir() if p.is_dir()] if (tmp_path/'reg').exists() else True
    assert cli_inproc('registry', 'show', 'm@1\n', *reg).returncode == 2


def _half_then_fail(real):
    "A writer that writes the first bytes of what it was given and then fails, as a full disk or a kill would."
    def write(self, data, *a, **kw):
        real(self, data[:len(data) // 3], *a, **kw)
        raise OSError(28, 'No space left on device')
    return write


def test_model_sidecar_last_json_and_best_checkpoint_are_written_atomically(tmp_path, monkeypatch):
    import pathlib, torch
    from medtrain.models import build_model, save_model, read_meta
    from medtrain.test_utils import tiny_learner
    from medtrain.resume import TrainCheckpoint
    from medtrain.train import SaveBestModel
    meta = dict(arch='medcnn_small', n_in=3, classes=['a', 'b'], size=32, mean=[.5] * 3, std=[.25] * 3)
    save_model(build_model('medcnn_small', 3, 2), tmp_path/'model', meta)
    learn = tiny_learner(path=tmp_path, model_dir='checkpoints')
    ckpt, best = TrainCheckpoint('last'), SaveBestModel(monitor='valid_loss', fname='best', verbose=False)
    learn.add_cbs([ckpt, best]); learn.fit(1, 1e-2)
    last_json = (tmp_path/'checkpoints'/'last.json').read_text()
    best_bytes = (tmp_path/'checkpoints'/'best.pth').read_bytes()
    with monkeypatch.context() as m:
        m.setattr(pathlib.Path, 'write_text', _half_then_fail(pathlib.Path.write_text))
        for f in (lambda: save_model(build_model('medcnn_small', 3, 2), tmp_path/'model', dict(meta, classes=['x', 'y'])),
                  lambda: ckpt.save(5, 0)):
            try: f(); raise AssertionError('the write did not fail')
            except OSError: pass
    real_save = torch.save
    def half_save(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw); pathlib.Path(f).write_bytes(pathlib.Path(f).read_bytes()[:100]); raise OSError(28, 'No space left on device')
    monkeypatch.setattr(torch, 'save', half_save)
    try: best._save('best'); raise AssertionError('the write did not fail')
    except OSError: pass
    assert read_meta(tmp_path/'model')['classes'] == ['a', 'b']          # the previous sidecar, whole
    assert (tmp_path/'checkpoints'/'last.json').read_text() == last_json
    assert (tmp_path/'checkpoints'/'best.pth').read_bytes() == best_bytes
