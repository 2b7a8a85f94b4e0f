"""The slim serving image: `medtrain serve` really runs without the training stack, and the requirement set the Dockerfile's
`cpu`/`cuda` targets install (settings.ini `serve_runtime`) covers what it imports and pulls in none of fastai's."""
import configparser, json, re, shlex, subprocess, sys, textwrap
from importlib import metadata
from pathlib import Path
from packaging.requirements import Requirement
from conftest import medtrain_inproc, ROOT

TRAINING_STACK = {'fastai', 'torch', 'torchvision', 'timm', 'accelerate', 'optuna', 'wandb', 'gradio', 'scikit-learn', 'matplotlib', 'onnx'}
TEST_CLIENT = ['httpx', 'httpx2', 'httpcore', 'h11', 'certifi', 'idna', 'sniffio', 'anyio']   # the probe's TestClient, not the server's
norm = lambda n: re.sub(r'[-_.]+', '-', n).lower()

def _serve_runtime() -> list[str]:
    c = configparser.ConfigParser(delimiters=['=']); c.read(ROOT/'settings.ini')
    return shlex.split(c['DEFAULT']['serve_runtime'])

def _closure(names) -> set[str]:
    "Installed distributions `names` pull in (their requirements without extras, recursively), normalised names."
    seen, todo = set(), [norm(Requirement(r).name) for r in names]
    while todo:
        n = todo.pop()
        if n in seen: continue
        seen.add(n)
        try: reqs = metadata.requires(n) or []
        except metadata.PackageNotFoundError: continue
        for r in map(Requirement, reqs):
            if r.marker is None or r.marker.evaluate({'extra': ''}): todo.append(norm(r.name))
    return seen

PROBE = textwrap.dedent('''
    import importlib.abc, io, json, sys, time
    BLOCK = set(open(sys.argv[2]).read().split())
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCK: raise ModuleNotFoundError(f"No module named {name!r} (not in the serving image)", name=name)
    sys.meta_path.insert(0, Block())
    from medtrain.cli import build_parser          # the console script's parser, as the container runs it
    from medtrain.config import ServeConfig
    args = build_parser().parse_args(['serve', '--model-path', sys.argv[1], '--reload-interval-s', '0'])
    from medtrain.cli_serve import demo_available
    assert demo_available(ServeConfig()) is False  # no Gradio in the image: no demo, and a note instead of a crash
    from PIL import Image
    from starlette.testclient import TestClient
    from medtrain.serve import create_app
    out = {}
    with TestClient(create_app(args.model_path, args.backend, args.registry, ServeConfig(reload_interval_s=0), demo=False)) as c:
        for _ in range(600):
            if c.get('/ready').status_code == 200: break
            time.sleep(0.1)
        b = io.BytesIO(); Image.new('RGB', (40, 40), 90).save(b, 'PNG')
        for _ in range(3): out['predict'] = c.post('/predict', files={'file': ('x.png', b.getvalue())}).status_code
        out['invocations'] = c.post('/invocations', content=b.getvalue()).status_code
        out['metrics'] = c.get('/metrics').status_code
        out['metadata'] = c.get('/metadata').json()['has_drift_reference']
    out['modules'] = sorted({m.split('.')[0] for m in sys.modules})
    print(json.dumps(out))
''')

def test_serve_runs_with_only_serve_runtime_installed(trained_run, tmp_path):
    """`medtrain serve` (CLI parser, model load, /predict, /invocations, /metrics, drift) in a process where every installed package
    outside settings.ini `serve_runtime` (and what it pulls in) cannot be imported: torch, fastai, timm, gradio... and optional extras."""
    allowed = _closure(_serve_runtime()) | set(TEST_CLIENT) | {'medtrain'}
    blocked = sorted(m for m, ds in metadata.packages_distributions().items()
                     if not m.startswith('_') and not any(norm(d) in allowed for d in ds) and m not in sys.stdlib_module_names)
    assert {'fastai', 'torch', 'timm', 'gradio'} <= set(blocked)
    (tmp_path/'blocked.txt').write_text('\n'.join(blocked))
    reg = tmp_path/'registry'
    medtrain_inproc('registry', 'register', trained_run, '--name', 'lesions', '--registry', reg, check=True)   # with its drift reference
    from medtrain.registry import Registry
    model = Registry(reg).resolve('lesions@1')
    if not (model/'model.onnx').exists(): medtrain_inproc('export', model, '--format', 'onnx', check=True)
    r = subprocess.run([sys.executable, '-c', PROBE, str(model), str(tmp_path/'blocked.txt')], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env={'PATH': '/usr/bin:/bin', 'PYTHONPATH': str(ROOT), 'MEDTRAIN_CACHE_DIR': str(tmp_path/'cache'), 'HOME': str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert (out['predict'], out['invocations'], out['metrics'], out['metadata']) == (200, 200, 200, True), out
    assert not set(out['modules']) & set(blocked)

def test_serve_runtime_excludes_the_training_stack():
    "The slim image's requirement set pulls in none of fastai's training stack, and the Dockerfile's serving targets install exactly it."
    closure = _closure(_serve_runtime())
    assert not closure & TRAINING_STACK, sorted(closure & TRAINING_STACK)
    assert {'onnxruntime', 'fastapi', 'uvicorn', 'prometheus-client', 'pydicom'} <= closure
    text = (ROOT/'Dockerfile').read_text()
    serve_deps = text.split('AS serve-deps-cpu', 1)[1].split('\nFROM ', 1)[0]
    assert '["serve_runtime"]' in serve_deps and 'torch' not in serve_deps and '["requirements"]' not in serve_deps
