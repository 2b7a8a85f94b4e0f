"The command line as a user meets it: help, exit codes, one-line errors naming the key."
import subprocess, sys
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
