import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def medtrain(*args, cwd=None, env=None, check=False, timeout=900):
    "Run the real CLI in a subprocess (`python -m medtrain ...`); returns the CompletedProcess."
    e = {**os.environ, 'MPLBACKEND': 'Agg', **(env or {})}
    r = subprocess.run([sys.executable, '-m', 'medtrain', *map(str, args)], cwd=cwd, env=e,
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"medtrain {' '.join(map(str, args))} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r

@pytest.fixture
def cli(): return medtrain

# medcnn_small, not the default resnet18: the same code path at a fifth of the CPU time (a test that needs resnet18 says so).
TINY = ['data.synthetic.n_images=160', 'data.synthetic.image_size=32', 'data.size=32', 'train.epochs=2',
        'train.bs=32', 'train.device=cpu', 'data.synthetic.majority=0.4', 'model.arch=medcnn_small']

def tiny_config(tmp_path=None, *extra: str) -> list[str]:
    """The `key=value` overrides of a tiny synthetic CPU run: `TINY`, its data in `tmp_path/data` (when given), then
    `extra`; a key given again replaces the earlier value. The one small config the tests share."""
    kv = dict(o.split('=', 1) for o in [*TINY, *([f'data.path={tmp_path}/data'] if tmp_path else []), *extra])
    return [f'{k}={v}' for k, v in kv.items()]

def as_sets(overrides) -> list[str]:
    "`--set` arguments for the CLI from `key=value` overrides."
    return [a for kv in overrides for a in ('--set', kv)]

def load_tiny(tmp_path=None, *extra: str):
    "`tiny_config(tmp_path, *extra)` as a loaded `Config` (environment variables ignored)."
    from medtrain.config import load_config
    return load_config(overrides=tiny_config(tmp_path, *extra), environ={})

@pytest.fixture
def tiny_sets(tmp_path):
    "`--set` arguments for a tiny synthetic run whose data lives in tmp_path."
    return as_sets(tiny_config(tmp_path))

@pytest.fixture(scope='session')
def trained_run(tmp_path_factory):
    "One tiny medcnn_small run (32 px, 1 epoch, ~10 s) shared by the registry, export, serving and predict tests."
    d = tmp_path_factory.mktemp('trained')
    sets = as_sets(tiny_config(d, 'train.epochs=1', 'model.arch=medcnn_small'))
    medtrain('train', *sets, '--run-dir', d/'run', '--quiet', check=True)
    return d/'run'

import contextlib, io
from types import SimpleNamespace

def medtrain_inproc(*args, check=False):
    "Run `medtrain ARGS` in this process (the imports are paid once per test session, not once per command)."
    from medtrain.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in args])
    r = SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
    if check and code: raise AssertionError(f"medtrain {' '.join(map(str, args))} exited {code}\n{r.stdout}\n{r.stderr}")
    return r

@pytest.fixture
def cli_inproc(): return medtrain_inproc
