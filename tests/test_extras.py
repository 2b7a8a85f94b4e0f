"""The install extras (`medtrain[serve]`, `[report]`, `[s3]`, `[dicom]`, `[all]`): a missing one is named, not a traceback;
the package metadata gives each extra its packages; the report extra works in a clean venv.

Budget (2 cores, whole file about a minute): that every extra resolves with the pinned stack is what `make install` proves on
each CI run (`.[dev]` holds `[all]`, with constraints.txt); a `pip install --dry-run '.[all]'` here re-resolved the same ~200
packages in 1-2 min and was dropped. A real clean install of an extra with its base means torch (minutes, ~6 GB), so the real
install is the report extra's own packages, where a plain install failed (papermill without a kernel); the DICOM decoders are
tested in tests/test_data.py, s3 through its missing-extra message."""
import configparser, json, os, shlex, shutil, subprocess, sys
from pathlib import Path
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, '-m', 'pip']
EXPECTED = {'serve': {'uvicorn', 'gradio'}, 'report': {'papermill', 'nbconvert', 'ipykernel'}, 's3': {'s3fs'},
            'dicom': {'pylibjpeg', 'pylibjpeg-openjpeg', 'pyjpegls', 'python-gdcm'}, 'text': {'sentencepiece', 'transformers'}}

def _settings():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini', encoding='utf-8')
    return cfg['DEFAULT']

def _pins():
    return {canonicalize_name(l.split('==')[0]): l.split('==')[1].strip() for l in (ROOT/'constraints.txt').read_text().splitlines() if '==' in l}

def _clean_venv(path):
    "A venv with nothing in it (no pip, no system site-packages); this interpreter's pip installs into it (`pip --python`)."
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True, timeout=120)
    py = path/'bin'/'python'
    r = subprocess.run([str(py), '-c', 'import sys; print(sys.prefix != sys.base_prefix)'], capture_output=True, text=True)
    assert r.stdout.strip() == 'True'
    return py

@pytest.mark.parametrize('hidden,argv,extra', [
    ('ipykernel', ['report', 'runs/none'], 'report'),                        # papermill had no python3 kernel
    ('s3fs', ['data', 'scan', 's3://medtrain-no-bucket/images', '-q'], 's3'),  # fsspec: "Install s3fs to access S3"
])
def test_a_missing_extra_is_named(tmp_path, hidden, argv, extra):
    "Without an extra's package, the command says which extra to install (one line, exit 1), not a traceback."
    code = f"import sys; sys.modules[{hidden!r}] = None; from medtrain.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, '-c', code, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert f"pip install 'medtrain[{extra}]'" in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]

def test_each_extra_declares_its_packages(tmp_path):
    """The built package's metadata (what pip resolves from): each extra lists its packages, `all` and `dev` hold them all,
    the base requirements lack the optional ones (so the extra is what brings them), and constraints.txt pins them."""
    src = tmp_path/'src'   # a copy: building the metadata must not leave build/ or egg-info in the checkout
    for f in ('setup.py', 'settings.ini', 'pyproject.toml', 'MANIFEST.in', 'README.md', 'nbs/evaluate.ipynb', 'nbs/train.ipynb'):
        (src/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy(ROOT/f, src/f)
    shutil.copytree(ROOT/'medtrain', src/'medtrain', ignore=shutil.ignore_patterns('__pycache__'))
    r = subprocess.run([*PIP, 'install', '--dry-run', '--no-deps', '--no-build-isolation', '--ignore-installed', '-q', '--report', str(tmp_path/'r.json'),
                        f'{src}[all]'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    meta, = [i['metadata'] for i in json.loads((tmp_path/'r.json').read_text())['install']]
    assert {'serve', 'report', 's3', 'dicom', 'all', 'dev'} <= set(meta['provides_extra']), meta['provides_extra']
    base, by_extra = set(), {}
    for req in map(Requirement, meta['requires_dist']):
        if req.marker is None: base.add(canonicalize_name(req.name))
        for extra in meta['provides_extra']:
            if req.marker is not None and req.marker.evaluate({'extra': extra}): by_extra.setdefault(extra, set()).add(canonicalize_name(req.name))
    for extra, want in EXPECTED.items():
        assert want <= by_extra[extra] and want <= by_extra['all'] and want <= by_extra['dev'], (extra, by_extra)
        if extra != 'dicom': assert not (want & base), f"{extra}: {want & base} is in the base requirements too"
    assert EXPECTED['dicom'] <= base                 # compressed DICOM decodes with a plain `pip install medtrain`
    assert {'pytest', 'nbdev'} <= by_extra['dev'] and 'pytest' not in by_extra['all']
    missing = set().union(*EXPECTED.values()) - set(_pins())
    assert not missing, f"constraints.txt does not pin {missing}"

def test_report_extra_runs_the_notebook_in_a_clean_venv(tmp_path):
    """A real install of the report extra's packages (pinned) into an empty venv: papermill executes a notebook on the
    python3 kernel, which is that venv's own python (a plain install had papermill but no kernel)."""
    reqs = shlex.split(_settings()['report_requirements'])
    py = _clean_venv(tmp_path/'venv')
    r = subprocess.run([*PIP, '--python', str(py), 'install', '-q', '--no-compile', '-c', str(ROOT/'constraints.txt'), *reqs],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('import sys; print(sys.prefix)')])
    nbformat.write(nb, tmp_path/'in.ipynb')
    check = f"""
import papermill, nbformat
papermill.execute_notebook({str(tmp_path/'in.ipynb')!r}, {str(tmp_path/'out.ipynb')!r}, kernel_name='python3', progress_bar=False)
print(nbformat.read({str(tmp_path/'out.ipynb')!r}, 4).cells[0].outputs[0]['text'].strip())
"""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'JUPYTER_PATH')}
    env['PATH'] = f"{py.parent}:{env.get('PATH', '')}"
    env['JUPYTER_DATA_DIR'] = env['JUPYTER_CONFIG_DIR'] = str(tmp_path/'jupyter')   # no user-level kernelspec of another python
    r = subprocess.run([str(py), '-c', check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == str(tmp_path/'venv'), r.stdout          # the kernel ran in the clean venv's python
