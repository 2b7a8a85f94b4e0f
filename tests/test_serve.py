"The REST API and the Gradio demo over real HTTP: one `medtrain serve` subprocess on a loopback port, serving a registered model."
import concurrent.futures as cf, io, json, os, socket, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, httpx
from PIL import Image
from conftest import medtrain_inproc, ROOT

MAX_BYTES, MAX_PIXELS = 300_000, 512 * 512

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def server(trained_run, tmp_path_factory):
    d = tmp_path_factory.mktemp('serve')
    reg = d/'registry'
    medtrain_inproc('registry', 'register', trained_run, '--name', 'lesions', '--registry', reg, check=True)   # with drift reference
    medtrain_inproc('registry', 'promote', 'lesions', '1', '--registry', reg, check=True)
    from medtrain.registry import Registry
    model_dir = Registry(reg).resolve('lesions@production')
    before = _listing(model_dir)
    with _serving(d, 'server', ['--model-path', 'lesions@production', '--registry', str(reg), '--max-upload-bytes', str(MAX_BYTES),
                               '--max-pixels', str(MAX_PIXELS), '--allowed-types', 'png,jpeg,tiff,dicom',
                               '--header-timeout-s', '2', '--body-timeout-s', '2']) as (url, log):
        yield dict(url=url, log=log, dir=d, registry=reg, test=pd.read_csv(trained_run/'test.csv'), model_dir=model_dir, listing_before=before)

def _listing(folder):
    "Names, sizes and mtimes of everything under `folder` (to prove serving wrote nothing there)."
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(folder).rglob('*'))}

import contextlib
@contextlib.contextmanager
def _serving(d, name, args, env=None):
    "A `medtrain serve` subprocess on a free loopback port (ONNX cache under `d`); yields (url, log path) once /ready."
    port, log_path = _free_port(), d/f'{name}.log'
    log = open(log_path, 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'medtrain', 'serve', '--port', str(port), '--log-level', 'warning', *args],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, 'MPLBACKEND': 'Agg', 'MEDTRAIN_CACHE_DIR': str(d/'cache'), **(env or {})})
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(url + '/ready', timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            assert time.time() < deadline, "server not ready after 240 s\n" + log_path.read_text()
            time.sleep(0.5)
        yield url, log_path
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()

def _png(path=None, size=(40, 40), fmt='PNG'):
    im = Image.open(path) if path else Image.new('RGB', size, (120, 60, 30))
    b = io.BytesIO(); im.save(b, fmt); return b.getvalue()

def test_predict_health_metadata(server, trained_run):
    url, test = server['url'], server['test']
    assert httpx.get(url + '/health').json() == {'status': 'ok'}
    meta = httpx.get(url + '/metadata').json()
    assert meta['version'] == {'name': 'lesions', 'version': 1, 'stage': 'production'} and meta['backend'] == 'onnx'
    assert meta['has_drift_reference'] and meta['preprocessing']['resize'] == 'squish'
    path = test.path[0]
    r = httpx.post(url + '/predict', files={'file': (Path(path).name, open(path, 'rb'), 'image/png')})
    assert r.status_code == 200, r.text
    body = r.json()
    assert abs(sum(body['probabilities'].values()) - 1) < 1e-4 and body['top_k'][0]['label'] == max(body['probabilities'], key=body['probabilities'].get)
    assert body['latency_ms']['total'] > 0
    # the server answers what the PyTorch model answers on the training preprocessing (model_dl: the model's own mean/std)
    import torch
    from medtrain.models import load_model, model_dl
    model, m = load_model(trained_run/'model')
    xb, _ = model_dl(test.head(1), m, bs=1).one_batch()
    with torch.no_grad(): ref = torch.softmax(model(xb), 1)[0].numpy()
    assert np.abs(np.array([body['probabilities'][c] for c in m['classes']]) - ref).max() < 1e-4
    for fmt in ('JPEG', 'TIFF'):   # other accepted types
        r = httpx.post(url + '/predict', files={'file': (f'x.{fmt.lower()}', _png(path, fmt=fmt))})
        assert r.status_code == 200, r.text
    # DICOM: the same pixels stored as an RGB DICOM file give the same answer as the PNG
    from medtrain.data import write_dicom
    write_dicom(server['dir']/'x.dcm', np.asarray(Image.open(path).convert('RGB')))
    r = httpx.post(url + '/predict', files={'file': ('scan.dcm', (server['dir']/'x.dcm').read_bytes(), 'application/dicom')})
    assert r.status_code == 200, r.text
    assert max(abs(r.json()['probabilities'][c] - body['probabilities'][c]) for c in m['classes']) < 1e-5
    assert '/predict' in httpx.get(url + '/openapi.json').json()['paths'] and httpx.get(url + '/docs').status_code == 200

@pytest.mark.parametrize('name,data,status,text', [
    ('big.png', None, 413, 'over the upload limit'),
    ('huge.png', 'pixels', 413, 'pixels is over the limit'),
    ('notes.txt', b'just some text, not an image', 415, 'unrecognised file type'),
    ('anim.gif', 'gif', 415, 'gif images are not accepted'),
    ('cut.png', 'truncated', 400, 'cannot decode'),
    ('empty.png', b'', 400, 'empty file'),
])
def test_bad_uploads_get_4xx_with_a_reason(server, name, data, status, text):
    if data is None: data = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8); data = _png_arr(data)
    elif data == 'pixels': data = _png(size=(600, 600))                       # small file, too many pixels
    elif data == 'gif': data = _png(size=(8, 8), fmt='GIF')
    elif data == 'truncated': data = _png(server['test'].path[0])[:200]
    r = httpx.post(server['url'] + '/predict', files={'file': (name, data)})
    named = name in r.json()['detail'] or name == 'big.png'   # too big is refused from Content-Length, before the file name is read
    assert r.status_code == status and text in r.json()['detail'] and named, (r.status_code, r.text)

def _png_arr(a):
    b = io.BytesIO(); Image.fromarray(a).save(b, 'PNG'); return b.getvalue()

def test_missing_file_field_and_no_tracebacks(server):
    assert httpx.post(server['url'] + '/predict', data={'x': '1'}).status_code == 422
    assert 'Traceback' not in server['log'].read_text()

def test_batch_reports_bad_files_and_predicts_the_rest(server):
    p = server['test'].path
    files = [('files', ('a.png', open(p[0], 'rb'))), ('files', ('bad.txt', b'nope')), ('files', ('b.png', open(p[1], 'rb')))]
    r = httpx.post(server['url'] + '/predict/batch', files=files)
    assert r.status_code == 200
    body = r.json()
    assert (body['n_ok'], body['n_failed']) == (2, 1)
    assert body['results'][1]['status'] == 415 and 'probabilities' in body['results'][2]

def test_concurrent_requests_and_metrics(server):
    url, paths = server['url'], list(server['test'].path[:8]) * 3
    def one(p):
        r = httpx.post(url + '/predict', files={'file': (Path(p).name, open(p, 'rb'))}, timeout=60)
        return p, r.status_code, r.json().get('probabilities')
    with cf.ThreadPoolExecutor(16) as ex:
        futures = [ex.submit(one, p) for p in paths]
        health = [httpx.get(url + '/health', timeout=10).status_code for _ in range(5)]   # the event loop stays free
        results = [f.result() for f in futures]
    assert health == [200] * 5 and all(s == 200 for _, s, _ in results)
    by_path = {}
    for p, _, probs in results: by_path.setdefault(p, []).append(probs)
    assert all(all(x == v[0] for x in v) for v in by_path.values())           # same image, same answer, under concurrency
    m = httpx.get(url + '/metrics').text
    assert 'medtrain_requests_total{endpoint="/predict",status="200"}' in m
    images = float(next(l.split()[-1] for l in m.splitlines() if l.startswith('medtrain_images_total')))
    assert images >= len(paths)
    drift = {l.split('"')[1]: float(l.split()[-1]) for l in m.splitlines() if l.startswith('medtrain_drift_score{')}
    from medtrain.monitor import MIN_WINDOW   # no drift score before a window of MIN_WINDOW images (small windows are noise)
    expected = {'intensity_psi', 'prediction_psi', 'embedding_mahalanobis', 'intensity_ks_p', 'prediction_chi2_p', 'embedding_chi2_p', 'drift'}
    assert set(drift) == (expected if images >= MIN_WINDOW else set()) and all(np.isfinite(list(drift.values())))

def test_gradio_demo_in_headless_chromium(server, tmp_path):
    "Load /demo in Debian's Chromium, upload an image, wait for the probabilities and the Grad-CAM overlay; save a screenshot."
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait
    opts = webdriver.ChromeOptions()
    opts.binary_location = '/usr/bin/chromium'
    for a in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
              '--disable-sync', '--disable-dev-shm-usage', '--window-size=1280,900', f'--user-data-dir={tmp_path/"chrome"}'):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=opts)
    shot = server['dir']/'demo.png'
    try:
        driver.get(server['url'] + '/demo/')
        wait = WebDriverWait(driver, 120)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#upload input[type=file]'))
        upload.send_keys(str(Path(server['test'].path[0]).resolve()))
        def predicted(d):
            text = d.find_element(By.ID, 'probabilities').text
            imgs = d.find_elements(By.CSS_SELECTOR, '#gradcam img')
            return text if imgs and any(c in text for c in ('akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc')) and '%' in text else False
        text = wait.until(predicted)
        who = wait.until(lambda d: d.find_element(By.ID, 'answered-by').text or False)   # the demo says which version answered
        time.sleep(0.5)
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    out = ROOT/'tests'/'artifacts'; out.mkdir(exist_ok=True)   # kept for a human to look at (git-ignored)
    (out/'demo_screenshot.png').write_bytes(shot.read_bytes())
    im = np.asarray(Image.open(shot).convert('RGB'))
    assert im.shape[0] > 400 and im.std() > 10, "blank screenshot"
    assert '%' in text and who == 'answered by lesions v1 (production)', who

# ---- hardening (issue L): each test below failed on the code before it ----

def _raw(url, request: bytes, wait_s: float = 10, close_write=False) -> bytes:
    "Send raw bytes to the server and read until it answers and closes (or `wait_s` passes)."
    host, port = url.split('//')[1].split(':')
    with socket.create_connection((host, int(port)), timeout=wait_s) as s:
        s.sendall(request)
        got, deadline = b'', time.time() + wait_s
        while time.time() < deadline:
            try: chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError): break
            if not chunk: break
            got += chunk
            if b'\r\n\r\n' in got and b'"detail"' in got: break
        return got

def _multipart_head(field='file', name='x.png'):
    return (f'--B\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\nContent-Type: image/png\r\n\r\n').encode()

@pytest.mark.parametrize('path', ['/predict', '/predict/batch'])
def test_oversize_content_length_refused_before_the_body(server, path):
    "A 500 MB Content-Length gets 413 at once: the server answers while the client has sent 1 KB of it."
    start = time.time()
    head = (f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n'
            f'Content-Length: {500 * 2**20}\r\n\r\n').encode()
    got = _raw(server['url'], head + _multipart_head() + b'\0' * 1000)
    assert got.startswith(b'HTTP/1.1 413'), got[:300]
    assert b'over the upload limit' in got and time.time() - start < 10

def test_chunked_body_is_cut_at_the_limit(server):
    "A chunked upload without Content-Length is counted as it arrives: 413 once past the limit, without waiting for the end."
    head = b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n'
    chunk = b'\0' * 65536
    body = b''.join(b'%x\r\n%s\r\n' % (len(c), c) for c in [_multipart_head()] + [chunk] * (MAX_BYTES // len(chunk) + 2))
    got = _raw(server['url'], head + body)   # no terminating 0-chunk: the client "keeps sending"
    assert got.startswith(b'HTTP/1.1 413'), got[:300]

def test_slow_clients_are_dropped(server):
    "Headers that never finish: the connection is closed (header timeout 2 s); headers then no body: 408 (body timeout 2 s)."
    start = time.time()
    got = _raw(server['url'], b'POST /predict HTTP/1.1\r\nHost: x\r\n', wait_s=15)
    assert got == b'' and time.time() - start < 10, (got, time.time() - start)
    start = time.time()
    got = _raw(server['url'], b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 5000\r\n\r\n', wait_s=15)
    assert got.startswith(b'HTTP/1.1 408') and time.time() - start < 10, (got[:200], time.time() - start)

def test_default_pixel_limit_follows_the_model(trained_run, tmp_path):
    "Without --max-pixels a small PNG of 9 M pixels is refused for a 32 px model (the old default accepted up to 40 M)."
    from fastapi.testclient import TestClient
    from medtrain.serve import create_app
    big = io.BytesIO(); Image.new('RGB', (3000, 3000)).save(big, 'PNG')
    with TestClient(create_app(trained_run/'model', backend='torch', demo=False)) as client:
        r = client.post('/predict', files={'file': ('big.png', big.getvalue())})
    assert r.status_code == 413 and 'pixels is over the limit of 4,000,000' in r.json()['detail'], r.text

def _sse_result(url, api: str, payload: dict) -> str:
    r = httpx.post(f"{url}/demo/gradio_api/call/{api}", json=payload, timeout=30)
    assert r.status_code == 200, r.text
    return httpx.get(f"{url}/demo/gradio_api/call/{api}/{r.json()['event_id']}", timeout=60).text

def test_demo_reads_only_uploaded_files(server):
    "The exact request from the issue: a server path in FileData must not be classified; a missing path answers the same."
    secret = server['dir']/'not-uploaded.png'
    secret.write_bytes(_png(server['test'].path[0]))
    answers = []
    for path in (secret, server['dir']/'missing.png', Path(server['test'].path[0]).resolve()):
        text = _sse_result(server['url'], 'classify', {'data': [{'path': str(path), 'meta': {'_type': 'gradio.FileData'}}]})
        assert 'event: error' in text and 'probabilities' not in text and 'confidences' not in text, text[:500]
        answers.append(text.split('event: error', 1)[1].strip())
    assert len(set(answers)) == 1, answers   # existence of a path does not leak
    # a file uploaded through the page is classified
    up = httpx.post(server['url'] + '/demo/gradio_api/upload', files={'files': ('lesion.png', _png(server['test'].path[0]), 'image/png')})
    assert up.status_code == 200, up.text
    text = _sse_result(server['url'], 'classify', {'data': [{'path': up.json()[0], 'orig_name': 'lesion.png', 'meta': {'_type': 'gradio.FileData'}}]})
    assert 'event: complete' in text and 'confidences' in text, text[:500]

def test_demo_upload_takes_only_images(server):
    r = httpx.post(server['url'] + '/demo/gradio_api/upload', files={'files': ('notes.txt', b'#!/bin/sh\necho hi\n', 'text/plain')})
    assert r.status_code == 415 and 'unrecognised file type; send one of png' in r.json()['detail'], r.text
    fake = b'\x89PNG\r\n\x1a\n' + os.urandom(4000)   # the right magic bytes on random data: the demo stores only what decodes
    r = httpx.post(server['url'] + '/demo/gradio_api/upload', files={'files': ('x.png', fake, 'image/png')})
    assert r.status_code == 415 and 'cannot read the png header' in r.json()['detail'], r.text

def test_answers_carry_no_server_paths(server):
    "/predict, /predict/batch, /metadata, /ready and errors name the model (name, version, arch, hash), never a server path."
    url, p = server['url'], server['test'].path
    bodies = [httpx.get(url + '/metadata').text, httpx.get(url + '/ready').text,
              httpx.post(url + '/predict', files={'file': ('a.png', open(p[0], 'rb'))}).text,
              httpx.post(url + '/predict', files={'file': ('cut.png', _png(p[0])[:300])}).text,
              httpx.post(url + '/predict/batch', files=[('files', ('a.png', open(p[0], 'rb'))), ('files', ('x.txt', b'no'))]).text]
    for b in bodies:
        for secret in (str(server['model_dir']), str(server['registry']), str(server['dir'])):
            assert secret not in b, (secret, b[:500])
    model = json.loads(bodies[2])['model']
    assert {k: model[k] for k in ('name', 'version', 'stage', 'arch')} == {'name': 'lesions', 'version': 1, 'stage': 'production', 'arch': 'medcnn_small'}
    assert len(model['sha256']) == 16
    assert 'Error' not in json.loads(bodies[3])['detail'], bodies[3]   # no library exception text

def test_serving_never_writes_into_the_model_folder(server):
    "The registered version is immutable: serving (ONNX export included) left its files, sizes and mtimes as they were."
    assert _listing(server['model_dir']) == server['listing_before']
    assert 'model.onnx' not in server['listing_before']
    assert list((server['dir']/'cache'/'onnx').glob('*/model.onnx')), "the export went into the cache"

@pytest.fixture(scope='module')
def locked_server(server):
    "A second server of the same model: API key from a file, no docs, no demo, CORS for one origin, at most 3 concurrent connections."
    d = server['dir']
    (d/'key').write_text('s3cret-key\n')
    with _serving(d, 'locked', ['--model-path', 'lesions@production', '--registry', str(server['registry']), '--api-key-file', str(d/'key'),
                                '--no-docs', '--no-demo', '--cors-origins', 'https://viewer.example', '--limit-concurrency', '3',
                                '--body-timeout-s', '8']) as (url, log):
        yield dict(server, url=url, log=log)

def test_api_key_docs_demo_cors(locked_server, server):
    url, p = locked_server['url'], locked_server['test'].path[0]
    key = {'Authorization': 'Bearer s3cret-key'}
    for path in ('/metadata', '/metrics', '/demo/', '/docs'):
        assert httpx.get(url + path).status_code == 401, path
    assert httpx.post(url + '/predict', files={'file': ('a.png', open(p, 'rb'))}).status_code == 401
    assert httpx.post(url + '/predict', files={'file': ('a.png', open(p, 'rb'))}, headers={'X-API-Key': 'wrong'}).status_code == 401
    assert httpx.get(url + '/health').status_code == 200 and httpx.get(url + '/ready').status_code == 200
    assert httpx.post(url + '/predict', files={'file': ('a.png', open(p, 'rb'))}, headers=key).status_code == 200
    assert httpx.post(url + '/predict', files={'file': ('a.png', open(p, 'rb'))}, headers={'X-API-Key': 's3cret-key'}).status_code == 200
    for path in ('/docs', '/openapi.json', '/redoc', '/demo/'):
        assert httpx.get(url + path, headers=key).status_code == 404, path
    pre = {'Origin': 'https://viewer.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization'}
    assert httpx.options(url + '/predict', headers=pre).headers.get('access-control-allow-origin') == 'https://viewer.example'
    assert 'access-control-allow-origin' not in httpx.options(server['url'] + '/predict', headers=pre).headers   # default: no CORS
    assert 'access-control-allow-origin' not in httpx.get(server['url'] + '/health', headers={'Origin': 'https://evil.example'}).headers

def test_limit_concurrency(locked_server):
    "Three requests held open: the fourth request gets 503 at once, the health probes still answer, and the server recovers."
    url = locked_server['url']
    host, port = url.split('//')[1].split(':')
    key = {'Authorization': 'Bearer s3cret-key'}
    held = []
    try:
        for _ in range(3):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-key\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 5000\r\n\r\n')
            held.append(s)
        time.sleep(0.5)
        r = httpx.get(url + '/metadata', headers=key, timeout=10)
        assert r.status_code == 503 and 'busy' in r.json()['detail'], r.text
        assert httpx.get(url + '/health', timeout=10).status_code == 200 and httpx.get(url + '/ready', timeout=10).status_code == 200
    finally:
        for s in held: s.close()
    deadline = time.time() + 10
    while httpx.get(url + '/metadata', headers=key, timeout=10).status_code != 200: assert time.time() < deadline; time.sleep(0.2)

def test_half_open_connections_from_one_client_cannot_starve_the_probes(locked_server):
    """70 connections from one address that never finish their headers (the locked server: 10 s header timeout, at most 3
    requests in flight): the ones beyond max_connections_per_client are closed at once, and /health keeps answering 200."""
    import select
    from medtrain.config import ServeConfig
    url = locked_server['url']
    host, port = url.split('//')[1].split(':')
    held = []
    try:
        for _ in range(70):
            s = socket.socket(); s.bind(('127.0.0.2', 0)); s.settimeout(10)   # another loopback address: the attacker is not the prober
            s.connect((host, int(port))); s.sendall(b'GET /metadata HTTP/1.1\r\nHost: x\r\n')   # half a request
            held.append(s)
        time.sleep(1)
        for _ in range(5): assert httpx.get(url + '/health', timeout=5).status_code == 200
        closed = select.select(held, [], [], 0)[0]   # readable now: EOF or reset, i.e. the server closed it (well before the header timeout)
        cap = ServeConfig().max_connections_per_client
        assert len(closed) == 70 - cap and set(closed) <= set(held[cap:]), (len(closed), cap)
    finally:
        for s in held: s.close()
