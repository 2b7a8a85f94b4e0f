"The nbdev contract: notebooks and generated modules in step, README generated from index.ipynb, config documented."
import shutil, subprocess, sys
from pathlib import Path
from pydantic import BaseModel
from medtrain.config import Config

ROOT = Path(__file__).resolve().parents[1]

def test_export_reproduces_the_package(tmp_path):
    "nbdev_export on a copy of the notebooks writes exactly the committed medtrain/*.py."
    for p in ('nbs', 'medtrain', 'settings.ini', 'setup.py'):
        src = ROOT/p
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path/p)
    exe = Path(sys.executable).parent/'nbdev_export'
    subprocess.run([str(exe)], cwd=tmp_path, check=True, capture_output=True)
    stale = [f.name for f in (ROOT/'medtrain').glob('*.py') if (tmp_path/'medtrain'/f.name).read_text() != f.read_text()]
    new = [f.name for f in (tmp_path/'medtrain').glob('*.py') if not (ROOT/'medtrain'/f.name).exists()]
    assert not stale and not new, f"run nbdev_export and commit: stale {stale}, missing {new}"

def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def _keys(model, prefix=''):
    for name, f in model.model_fields.items():
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel): yield from _keys(f.annotation, f'{prefix}{name}.')
        else: yield prefix + name

def test_every_config_key_is_documented():
    readme = (ROOT/'README.md').read_text()
    missing = [k for k in _keys(Config) if f'`{k}`' not in readme]
    assert not missing, f"config keys missing from the README's config reference: {missing}"
