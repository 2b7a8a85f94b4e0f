"The papermill report notebooks: `papermill nbs/train.ipynb OUT -p lr 1e-3` from the repo root, and `medtrain report RUN_DIR`."
import json, os, shutil, subprocess, sys
from pathlib import Path
from conftest import ROOT, medtrain

def _outputs(nb_path):
    "(texts, number of PNG outputs) of an executed notebook."
    nb = json.loads(Path(nb_path).read_text())
    texts, pngs = [], 0
    for c in nb['cells']:
        for o in c.get('outputs', []):
            data = o.get('data', {})
            texts.append(''.join(o.get('text', '')) + ''.join(data.get('text/plain', '')) + ''.join(data.get('text/html', '')))
            pngs += 'image/png' in data
    return '\n'.join(texts), pngs

def test_parameters_cells_parse():
    "papermill sees every parameter (a comment it cannot parse hides the name from `papermill --help-notebook`)."
    import papermill as pm
    assert list(pm.inspect_notebook(str(ROOT/'nbs'/'train.ipynb'))) == ['config', 'data_path', 'run_dir', 'lr', 'epochs', 'arch', 'bs',
                                                                    'size', 'n_images', 'device', 'target_sensitivity', 'positive_class', 'overrides']
    assert list(pm.inspect_notebook(str(ROOT/'nbs'/'evaluate.ipynb'))) == ['run_dir', 'runs_dir', 'test_data', 'out', 'target_sensitivity', 'positive_class',
                                                                       'calibrate', 'tta', 'bs', 'n_boot']

def test_papermill_train_then_report(tmp_path):
    env = {**os.environ, 'MPLBACKEND': 'module://matplotlib_inline.backend_inline', 'PYTHONPATH': str(ROOT)}
    out = tmp_path/'train-out.ipynb'
    r = subprocess.run([sys.executable, '-m', 'papermill', 'nbs/train.ipynb', str(out), '-p', 'lr', '1e-3',
                        '-p', 'data_path', str(tmp_path/'data'), '-p', 'run_dir', str(tmp_path/'run'), '-p', 'epochs', '1',
                        '-p', 'n_images', '120', '-p', 'device', 'cpu', '--no-progress-bar'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    text, pngs = _outputs(out)
    cfg = (tmp_path/'run'/'config.yaml').read_text()
    assert 'lr: 0.001' in cfg and 'epochs: 1' in cfg           # the -p values reached the run's config
    assert 'balanced_accuracy' in text and 'CI low' in text     # validation and test metric tables are shown
    assert pngs >= 6, pngs                                       # curves, confusion, ROC/PR, reliability, worst errors inline
    test_metrics = json.loads((tmp_path/'run'/'test'/'metrics.json').read_text())
    assert f"{test_metrics['accuracy']:.4f}" in text

    # medtrain report: the evaluation notebook, executed into --out, and its HTML copy
    res = medtrain('report', tmp_path/'run', '--out', tmp_path/'reports', '--quiet', env={'PYTHONPATH': str(ROOT)}, check=True)
    nb, page = tmp_path/'reports'/'run-evaluate.ipynb', tmp_path/'reports'/'run-evaluate.html'
    assert nb.exists() and page.exists(), res.stdout
    text, pngs = _outputs(nb)
    rep = json.loads((tmp_path/'run'/'report'/'metrics.json').read_text())
    assert rep['accuracy'] == test_metrics['accuracy']           # same model, same test split, same numbers
    assert 'temperature' in rep['calibration'] and pngs >= 7
    html = page.read_text()
    assert 'balanced_accuracy' in html and 'data:image/png;base64' in html and 'from medtrain' not in html   # code hidden


def test_installed_package_carries_the_report_notebooks(tmp_path):
    "A wheel install (no source tree beside it) finds the evaluation notebook in share/medtrain, so `medtrain report` works there too."
    src = tmp_path/'src'   # a copy of what the build reads, so setuptools' build/ folder does not land in the checkout
    for f in ('setup.py', 'settings.ini', 'pyproject.toml', 'MANIFEST.in', 'README.md', 'nbs/evaluate.ipynb', 'nbs/train.ipynb'):
        (src/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy(ROOT/f, src/f)
    shutil.copytree(ROOT/'medtrain', src/'medtrain', ignore=shutil.ignore_patterns('__pycache__'))
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path/'wheel'), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    wheel, = (tmp_path/'wheel').glob('medtrain-*.whl')
    # --ignore-installed: without it pip "upgrades" by uninstalling the environment's own medtrain first
    r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index', '--ignore-installed', '-q', '--prefix', str(tmp_path/'prefix'), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, '-c', 'import medtrain.evaluate'], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"the environment's medtrain is gone after the prefix install: {r.stderr[-2000:]}"
    site = next((tmp_path/'prefix').glob('lib/python3*/site-packages'))
    # the installed copy comes first on the path; run from tmp_path so no source checkout is importable
    r = subprocess.run([sys.executable, '-c', 'import medtrain; from medtrain.evaluate import report_notebook; print(medtrain.__file__); print(report_notebook())'],
                       cwd=tmp_path, env={**os.environ, 'PYTHONPATH': str(site)}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    mod, nb = map(Path, r.stdout.split())
    assert mod.is_relative_to(site), mod                           # really the wheel's medtrain, not the checkout
    assert nb == tmp_path/'prefix'/'share'/'medtrain'/'evaluate.ipynb', nb
    assert nb.read_bytes() == (ROOT/'nbs'/'evaluate.ipynb').read_bytes()
