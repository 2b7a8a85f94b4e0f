"""Every guarantee of the one serving layer, run against every kind of served model (issue Q).

A served kind is a `ServeAdapter` (chapter serve): image single-task and image multi-task (`ImageAdapter`, onnxruntime
and PyTorch), text AWD-LSTM and text `hf:` (`TextAdapter`). Each test below is parametrized over all of them, so a
modality registered later gets the same checks by adding one entry to `KINDS`. The apps run in-process (FastAPI's
TestClient, with their lifespan); `tests/test_serve.py` covers the same server over real HTTP and in Chromium."""
import io, json, os, time
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image

KEY = 's3cret-key'
AUTH = {'Authorization': f'Bearer {KEY}'}
KINDS = ['image', 'image-torch', 'multitask', 'text', 'text-hf']
SECRET = b'medtrain-conformance-secret: this file must never be copied or answered\n'

def _png(side=40, seed=0) -> bytes:
    b = io.BytesIO(); Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), np.uint8)).save(b, 'PNG'); return b.getvalue()

def _flat_png(side) -> bytes:
    b = io.BytesIO(); Image.new('RGB', (side, side), (90, 60, 30)).save(b, 'PNG'); return b.getvalue()

def _image_folder(d: Path, classes, seed=0) -> Path:
    import torch
    from medtrain.models import build_model, save_model
    from medtrain.data import norm_stats
    torch.manual_seed(seed)
    mean, std = norm_stats(3)
    save_model(build_model('medcnn_small', 3, len(classes)).eval(), d, dict(arch='medcnn_small', n_in=3, classes=list(classes), size=32, mean=mean, std=std))
    return d

def _multitask_folder(d: Path, seed=0) -> Path:
    import torch
    from medtrain.multitask import MultiTaskModel, Task
    from medtrain.models import save_model
    from medtrain.data import norm_stats
    torch.manual_seed(seed)
    tasks = [Task('dx', 'multiclass', ['a', 'b', 'c']), Task('malignant', 'binary', ['no', 'yes']), Task('thickness', 'regression', [], mean=2., std=.5)]
    mean, std = norm_stats(3)
    save_model(MultiTaskModel('medcnn_small', 3, tasks, 32).eval(), d, dict(arch='medcnn_small', n_in=3, classes=['a', 'b', 'c'], size=32, mean=mean, std=std,
               model_kind='multitask', head='multitask', tasks=[t.to_dict() for t in tasks]))
    return d

def _text_folder(d: Path, arch: str) -> Path:
    from medtrain.config import Config
    from medtrain.text import train_text
    import medtrain.text_hf  # noqa: F401  (registers the hf: trainer)
    d.mkdir(parents=True, exist_ok=True)
    corpus = ["huduma nzuri sana", "huduma mbaya kabisa", "nimefurahi sana", "sipendi kusubiri", "daktari mzuri", "dawa mbaya"] * 6
    pd.DataFrame(dict(text=corpus, label=['pos', 'neg'] * 18)).to_csv(d/'f.csv', index=False)
    cfg = Config.model_validate(dict(data=dict(modality='text', source='csv', path=str(d/'f.csv')), model=dict(arch=arch),
                                     train=dict(epochs=1, lm_epochs=1, bs=16, lr=1e-3, progress=False, device='cpu')))
    return train_text(cfg, d/'run').run_dir.path/'model'

def _tiny_bert(d: Path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast
    d.mkdir(parents=True, exist_ok=True)
    words = 'huduma nzuri sana mbaya kabisa nimefurahi sipendi kusubiri daktari mzuri dawa'.split()
    (d/'vocab.txt').write_text('\n'.join(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + words))
    BertTokenizerFast(vocab_file=str(d/'vocab.txt')).save_pretrained(d/'bert')
    BertModel(BertConfig(vocab_size=5 + len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(d/'bert')
    return d/'bert'

@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    "One model folder per kind (built, not trained, where weights do not matter), an incompatible one for each, and a registry."
    d = tmp_path_factory.mktemp('conformance')
    f = dict(image=_image_folder(d/'image', ['benign', 'malignant']), image3=_image_folder(d/'image3', ['benign', 'malignant', 'nevus'], seed=1),
             multitask=_multitask_folder(d/'mt'), multitask2=_multitask_folder(d/'mt2', seed=1),
             text=_text_folder(d/'text', 'awd_lstm_tiny'))
    f['text-hf'] = _text_folder(d/'hf', f"hf:{_tiny_bert(d)}")
    f['image-torch'], f['root'] = f['image'], d
    return f

def _spec(kind):
    "(backend, the folder kind registered as v1 and v3, the incompatible folder kind promoted as v2, how to ask, the demo's api)."
    return dict(image=('onnx', 'image', 'multitask'), **{'image-torch': ('torch', 'image', 'multitask')}, multitask=('onnx', 'multitask', 'image'),
                text=('torch', 'text', 'image'), **{'text-hf': ('torch', 'text-hf', 'image')})[kind]

def _ask(client, kind, **kw):
    "One /predict request of this kind's body (a PNG upload or a JSON text)."
    if kind.startswith('text'): return client.post('/predict', json={'text': 'huduma nzuri sana'}, **kw)
    return client.post('/predict', files={'file': ('lesion.png', _png())}, **kw)

def _wait_ready(client):
    for _ in range(600):
        if client.get('/ready').status_code == 200: return
        time.sleep(0.1)
    raise AssertionError(client.get('/metadata', headers=AUTH).text)

def _sse(client, api, data) -> str:
    r = client.post(f'/demo/gradio_api/call/{api}', json={'data': data}, headers=AUTH)
    assert r.status_code == 200, r.text
    return client.get(f"/demo/gradio_api/call/{api}/{r.json()['event_id']}", headers=AUTH).text

@pytest.fixture(params=KINDS)
def served(request, folders, tmp_path, monkeypatch):
    "A server of this kind following `m@production` (v1), with an API key, the demo, feedback where the kind takes it, and GRADIO_TEMP_DIR in tmp_path."
    from fastapi.testclient import TestClient
    from medtrain.config import ServeConfig
    from medtrain.registry import Registry
    from medtrain.serve import create_app
    import medtrain.demo  # noqa: F401  (registers the image demo, as `medtrain serve` does)
    kind = request.param
    backend, mine, other = _spec(kind)
    reg = Registry(tmp_path/'registry')
    for k in (mine, other, 'image3' if mine == 'image' else 'multitask2' if mine == 'multitask' else mine): reg.register(folders[k], 'm', reference=False)
    reg.promote('m', 1)
    gradio_tmp = tmp_path/'gradio'; gradio_tmp.mkdir()
    monkeypatch.setenv('GRADIO_TEMP_DIR', str(gradio_tmp))
    (tmp_path/'secret.txt').write_bytes(SECRET)
    limits = ServeConfig(onnx_cache_dir=tmp_path/'onnx', reload_interval_s=0, max_upload_bytes=200_000,
                         feedback_db=None if kind == 'multitask' else tmp_path/'feedback.sqlite')
    app = create_app('m@production', backend, tmp_path/'registry', limits, demo=True, api_key=KEY)
    with TestClient(app) as client:
        _wait_ready(client)
        yield dict(kind=kind, client=client, app=app, srv=app.state.medtrain if hasattr(app.state, 'medtrain') else None, reg=reg,
                   tmp=tmp_path, gradio_tmp=gradio_tmp, root=folders['root'])

def _srv(served):
    "The `Serving` of the app (the Gradio mount wraps the FastAPI app; its state is on the inner one)."
    app = served['app']
    return getattr(app.state, 'medtrain', None) or next(r.app for r in app.routes if getattr(r, 'path', '') == '/demo').state.medtrain

def test_every_route_but_the_probes_needs_the_key(served):
    client, app = served['client'], served['app']
    routes = {(r.path, m) for r in app.routes for m in getattr(r, 'methods', ()) or ()} | {('/demo/', 'GET'), ('/demo/config', 'GET')}
    assert ('/predict', 'POST') in routes and ('/metadata', 'GET') in routes
    for path, method in sorted(routes):
        if '{' in path or method not in ('GET', 'POST'): continue
        r = client.request(method, path)
        assert r.status_code == (200 if path in ('/health', '/ready', '/ping') else 401), (path, method, r.status_code)
    assert client.get('/ready').json() == {'ready': True} and client.get('/ping').json() == {'ready': True}   # probes name nothing
    assert _ask(client, served['kind'], headers=AUTH).status_code == 200
    assert _ask(client, served['kind'], headers={'X-API-Key': 'wrong'}).status_code == 401
    # no CORS unless cors_origins names the origin (Gradio's own middleware would allow any localhost origin, with credentials)
    for path in ('/demo/config', '/metadata'):
        r = client.get(path, headers={**AUTH, 'Origin': 'http://localhost:3000'})
        assert r.status_code == 200 and not any(h.startswith('access-control-') for h in r.headers), (path, dict(r.headers))
    pre = client.options('/demo/gradio_api/upload', headers={**AUTH, 'Origin': 'http://localhost:3000', 'Access-Control-Request-Method': 'POST'})
    assert 'access-control-allow-origin' not in pre.headers, dict(pre.headers)

def test_oversize_requests_get_413_early(served):
    client, kind = served['client'], served['kind']
    big = b'x' * 2_000_000
    r = client.post('/predict', content=big, headers={**AUTH, 'content-type': 'application/json' if kind.startswith('text') else 'multipart/form-data; boundary=B'})
    assert r.status_code == 413 and 'over the upload limit' in r.json()['detail'], r.text
    if kind.startswith('text'):
        r = client.post('/predict', json={'text': 'x' * 20_001}, headers=AUTH)
        assert r.status_code == 413 and 'over the limit of 20,000' in r.json()['detail'], r.text
        assert client.post('/predict', json={'text': '  '}, headers=AUTH).status_code == 422   # an empty text is not classified
    else:
        r = client.post('/predict', files={'file': ('huge.png', _flat_png(3000))}, headers=AUTH)   # a small file with too many pixels
        assert r.status_code == 413 and 'pixels is over the limit' in r.json()['detail'], r.text

def test_the_demo_reads_no_server_file_and_copies_nothing(served):
    "The attack of issue Q on every demo endpoint: a FileData naming a server file is refused, nothing lands in Gradio's temp folder."
    client, tmp = served['client'], served['tmp']
    config = client.get('/demo/config', headers=AUTH).json()
    apis = sorted({d.get('api_name') for d in config['dependencies'] if d.get('api_name')})
    assert apis, config['dependencies']
    for api in apis:
        for path in (tmp/'secret.txt', '/etc/passwd', tmp, tmp/'missing.png'):
            text = _sse(client, api, [{'path': str(path), 'orig_name': 'x.png', 'meta': {'_type': 'gradio.FileData'}}])
            assert 'event: error' in text and 'medtrain-conformance-secret' not in text and 'root:' not in text, (api, path, text[:300])
    copied = [p for p in served['gradio_tmp'].rglob('*') if p.is_file()]
    assert copied == [], copied
    # uploads: only what the model can read (a PNG signature on random bytes is refused too)
    r = client.post('/demo/gradio_api/upload', files={'files': ('x.png', b'\x89PNG\r\n\x1a\n' + os.urandom(5000), 'image/png')}, headers=AUTH)
    assert r.status_code == 415, r.text
    assert [p for p in served['gradio_tmp'].rglob('*') if p.is_file()] == []

def test_no_server_path_in_any_answer(served):
    client, kind = served['client'], served['kind']
    bad = client.post('/predict', json={'text': ''}, headers=AUTH) if kind.startswith('text') else client.post('/predict', files={'file': ('cut.png', _png()[:100])}, headers=AUTH)
    batch = (client.post('/predict/batch', json={'texts': ['huduma nzuri', '']}, headers=AUTH) if kind.startswith('text') else
             client.post('/predict/batch', files=[('files', ('a.png', _png())), ('files', ('b.txt', b'no'))], headers=AUTH))
    bodies = [client.get('/metadata', headers=AUTH).text, client.get('/ready').text, _ask(client, kind, headers=AUTH).text, bad.text, batch.text,
              client.get('/demo/config', headers=AUTH).text, client.get('/openapi.json', headers=AUTH).text]
    assert bad.status_code in (400, 422) and batch.status_code == 200 and batch.json()['n_failed'] == 1
    for b in bodies:
        for secret in (str(served['tmp']), str(served['root']), '/tmp/'):
            assert secret not in b, (secret, b[:400])

def test_reload_refuses_an_incompatible_version_and_follows_a_compatible_one(served):
    """v2 (another modality or task layout) is promoted: refused, v1 keeps answering, /ready stays true, /metadata says why;
    v3 (same kind) is promoted: swapped in, and the demo answers with the version REST answers with."""
    client, kind, reg = served['client'], served['kind'], served['reg']
    srv = _srv(served)
    reg.promote('m', 2); srv.reload_once({})
    meta = client.get('/metadata', headers=AUTH).json()
    assert meta['model']['version'] == 1 and meta['model']['stage'] != 'production', meta['model']   # v1 was archived by the promotion: said so
    assert meta['reload']['refused']['version'] == 2 and 'restart the server' in meta['reload']['refused']['reason'], meta['reload']
    assert client.get('/ready').status_code == 200 and _ask(client, kind, headers=AUTH).json()['model']['version'] == 1
    retry_at = {}   # a refused version is tried again later, not at every poll and not never
    srv.reload_once(retry_at); srv.reload_once(retry_at)
    assert srv.reload_error['attempts'] == 1
    retry_at[2] = 0; srv.reload_once(retry_at)
    assert srv.reload_error['attempts'] == 2
    reg.promote('m', 3); srv.reload_once({})
    assert _ask(client, kind, headers=AUTH).json()['model']['version'] == 3
    meta = client.get('/metadata', headers=AUTH).json()
    assert meta['model']['version'] == 3 and meta['reload']['refused'] is None
    if kind.startswith('text'): text = _sse(client, 'classify', ['huduma nzuri'])
    else:
        up = client.post('/demo/gradio_api/upload', files={'files': ('lesion.png', _png(), 'image/png')}, headers=AUTH)
        assert up.status_code == 200, up.text
        text = _sse(client, 'classify', [{'path': up.json()[0], 'orig_name': 'lesion.png', 'meta': {'_type': 'gradio.FileData'}}])
    assert 'event: complete' in text and 'm v3 (production)' in text, text[:600]

def test_feedback_follows_the_model_kind(served, tmp_path):
    "Single-label kinds take feedback behind the key (the database 0600); a multi-task model is refused at start-up, in one sentence."
    client, kind = served['client'], served['kind']
    if kind == 'multitask':
        from medtrain.config import ConfigError, ServeConfig
        from medtrain.serve import create_app
        with pytest.raises(ConfigError, match='feedback_db'):
            create_app(served['srv'].current().model_dir if served['srv'] else _srv(served).current().model_dir, 'onnx', limits=ServeConfig(feedback_db=tmp_path/'f.db'))
        return
    a = _ask(client, kind, headers=AUTH).json()
    assert client.post('/feedback', json=dict(prediction_id=a['prediction_id'], label=a['top_k'][0]['label'])).status_code == 401
    r = client.post('/feedback', json=dict(prediction_id=a['prediction_id'], label=a['top_k'][0]['label']), headers=AUTH)
    assert r.status_code == 200 and r.json()['correct'], r.text
    assert (served['tmp']/'feedback.sqlite').stat().st_mode & 0o077 == 0
