"The command line as a user meets it: help, exit codes, one-line errors naming the key."
import json, subprocess, sys
from pathlib import Path

def test_help_lists_subcommands(cli):
    r = cli('--help', check=True)
    for sub in ('train', 'evaluate', 'data'): assert sub in r.stdout

def test_console_script_works():
    r = subprocess.run([str(Path(sys.executable).parent/'medtrain'), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'evaluate' in r.stdout

def test_unknown_key_exits_2_naming_it(cli, tmp_path):
    cfg = tmp_path/'c.yaml'; cfg.write_text("model:\n  arhc: resnet18\n")
    r = cli('train', '--config', cfg)
    assert r.returncode == 2
    assert 'model.arhc: unknown key; did you mean model.arch?' in r.stderr
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1

def test_wrong_type_exits_2_naming_it(cli, tmp_path):
    cfg = tmp_path/'c.yaml'; cfg.write_text("train:\n  epochs: three\n")
    r = cli('train', '--config', cfg)
    assert r.returncode == 2 and 'train.epochs' in r.stderr and 'integer' in r.stderr

def test_bad_set_and_env_override_exit_2(cli):
    r = cli('train', '--set', 'train.lr=fast')
    assert r.returncode == 2 and 'train.lr' in r.stderr
    r = cli('train', env={'MEDTRAIN_TRAIN__PRECISION': 'fp8'})
    assert r.returncode == 2 and 'train.precision' in r.stderr

def test_missing_files_exit_2(cli, tmp_path):
    assert cli('train', '--config', tmp_path/'nope.yaml').returncode == 2
    r = cli('train', '--set', 'data.source=folder', '--set', f'data.path={tmp_path}/no-such-folder')
    assert r.returncode == 2 and 'data.path: no such file' in r.stderr and 'no-such-folder' in r.stderr
    r = cli('train', '--set', f'model.pretrained={tmp_path}/w.safetensors')
    assert r.returncode == 2 and 'model.pretrained' in r.stderr

def test_unknown_arch_exits_2(cli, tmp_path, tiny_sets):
    r = cli('train', *tiny_sets, '--set', 'model.arch=resnet1888', '--run-dir', tmp_path/'run')
    assert r.returncode == 2 and 'model.arch' in r.stderr and 'resnet18' in r.stderr

def test_run_dir_of_another_run_is_refused_never_merged(tmp_path, tiny_sets):
    "--run-dir on an earlier run: exit 2 naming --resume and --overwrite; --overwrite removes only the run's files, run.json starts fresh."
    from conftest import medtrain_inproc as cli_inproc
    run = tmp_path/'run'
    (run/'model').mkdir(parents=True); (run/'model'/'model.json').write_text('{"arch": "resnet18"}')   # an earlier run, as it left its folder
    (run/'config.yaml').write_text('train:\n  lr: 0.1\n')
    info = dict(status='finished', started='2026-01-01T00:00:00', resumed=3); (run/'run.json').write_text(json.dumps(info))
    (run/'notes.txt').write_text('my notes on this run')
    before = {p: p.read_bytes() for p in run.rglob('*') if p.is_file()}
    r = cli_inproc('train', *tiny_sets, '--set', 'model.arch=medcnn_small', '--run-dir', run, '--quiet')
    assert r.returncode == 2 and '--resume' in r.stderr and '--overwrite' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert {p: p.read_bytes() for p in run.rglob('*') if p.is_file()} == before          # nothing touched
    r = cli_inproc('train', *tiny_sets, '--set', 'model.arch=medcnn_small', '--set', 'train.epochs=1', '--set', 'data.synthetic.n_images=80',
                   '--run-dir', run, '--overwrite', '--quiet')
    assert r.returncode == 0, r.stderr
    new = json.loads((run/'run.json').read_text())
    assert new['status'] == 'finished' and 'resumed' not in new and new['started'] != info['started']   # not merged with the old one
    assert (run/'notes.txt').read_text() == 'my notes on this run'                     # the user's file stays
    assert 'lr: 0.1' not in (run/'config.yaml').read_text() and json.loads((run/'model'/'model.json').read_text())['arch'] == 'medcnn_small'
    (tmp_path/'mine').mkdir(); (tmp_path/'mine'/'config.yaml').write_text('# my own config\n')
    r = cli_inproc('train', *tiny_sets, '--run-dir', tmp_path/'mine', '--overwrite', '--quiet')
    assert r.returncode == 2 and 'config.yaml' in r.stderr and (tmp_path/'mine'/'config.yaml').read_text() == '# my own config\n', r.stderr

def test_a_newly_registered_source_is_accepted_by_config_and_cli(tmp_path, cli_inproc):
    "`@register_source('mine')` is all it takes: `--set data.source=mine` trains on its rows, with no edit of the config or the CLI."
    import pandas as pd
    from medtrain.config import SyntheticConfig
    from medtrain.data import SOURCES, register_source, make_synthetic
    rows = make_synthetic(tmp_path/'syn', SyntheticConfig(n_images=40, image_size=24, n_classes=2, majority=0.5), seed=0, progress=False)
    if 'mine' not in SOURCES:
        @register_source('mine')
        def mine(cfg, progress=True): return pd.read_csv(Path(cfg.path)/'manifest.csv').assign(path=lambda d: [str(Path(cfg.path)/p) for p in d.path])
    sets = ['data.source=mine', f'data.path={tmp_path/"syn"}', 'data.size=24', 'train.epochs=1', 'train.bs=16', 'train.device=cpu', 'model.arch=medcnn_small']
    cli_inproc('train', *[a for kv in sets for a in ('--set', kv)], '--run-dir', tmp_path/'run', '--quiet', check=True)
    assert len(pd.read_csv(tmp_path/'run'/'splits.csv')) == len(rows)
    r = cli_inproc('train', '--set', 'data.source=mien', '--set', f'data.path={tmp_path/"syn"}', '--run-dir', tmp_path/'run2')
    assert r.returncode == 2 and "data.source: unknown data source 'mien'; did you mean 'mine'" in r.stderr and not (tmp_path/'run2').exists()

def test_evaluate_flags_follow_evalconfig(monkeypatch, capsys):
    "A default changed in EvalConfig is the `evaluate` flag's default (parsed and in --help) and reaches evaluate()."
    import pytest
    from pydantic import Field
    import medtrain.cli as C, medtrain.cli_models as M, medtrain.evaluate as E, medtrain.registry as R
    class Changed(M.EvalConfig):
        n_boot: int = Field(7, ge=1, description="bootstrap resamples")
        tta: bool = Field(True, description="flips")
    monkeypatch.setattr(M, 'EvalConfig', Changed)   # the evaluate command group builds its flags and its config from it
    a = C.build_parser().parse_args(['evaluate', '--model-path', 'm', '--test-data', 't'])
    assert (a.n_boot, a.tta, a.bs) == (7, True, M.EvalConfig().bs)
    with pytest.raises(SystemExit): C.build_parser().parse_args(['evaluate', '--help'])
    assert '(default 7)' in capsys.readouterr().out
    seen = {}
    monkeypatch.setattr(R, 'resolve_model', lambda m, registry=None: m)
    monkeypatch.setattr(E, 'evaluate', lambda *a, cfg=None, **kw: seen.update(cfg=cfg))
    assert C.main(['evaluate', '--model-path', 'm', '--test-data', 't', '--no-tta', '--ci-level', '0.9']) in (0, None)
    assert (seen['cfg'].n_boot, seen['cfg'].tta, seen['cfg'].ci_level) == (7, False, 0.9)
    assert C.main(['evaluate', '--model-path', 'm', '--test-data', 't', '--target-sensitivity', '2']) == 2
    assert '--target-sensitivity' in capsys.readouterr().err
