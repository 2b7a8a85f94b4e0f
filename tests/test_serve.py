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
    port, log = _free_port(), open(d/'server.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'medtrain', 'serve', '--model-path', 'lesions@production', '--registry', str(reg),
                             '--port', str(port), '--max-upload-bytes', str(MAX_BYTES), '--max-pixels', str(MAX_PIXELS),
                             '--allowed-types', 'png,jpeg,tiff,dicom', '--log-level', 'warning'],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, 'MPLBACKEND': 'Agg'})
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, (d/'server.log').read_text()
            try:
                if httpx.get(url + '/ready', timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            assert time.time() < deadline, "server not ready after 240 s\n" + (d/'server.log').read_text()
            time.sleep(0.5)
        yield dict(url=url, log=d/'server.log', dir=d, registry=reg, test=pd.read_csv(trained_run/'test.csv'))
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
    # the server answers what the PyTorch model answers on the training preprocessing (test_dl)
    import torch
    from medtrain.models import load_model
    from medtrain.data import test_dl
    model, m = load_model(trained_run/'model')
    xb, _ = test_dl(test.head(1), m['classes'], m['size'], m['n_in'], bs=1).one_batch()
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
    assert r.status_code == status and text in r.json()['detail'] and name in r.json()['detail'], (r.status_code, r.text)

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
        time.sleep(0.5)
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    out = ROOT/'tests'/'artifacts'; out.mkdir(exist_ok=True)   # kept for a human to look at (git-ignored)
    (out/'demo_screenshot.png').write_bytes(shot.read_bytes())
    im = np.asarray(Image.open(shot).convert('RGB'))
    assert im.shape[0] > 400 and im.std() > 10, "blank screenshot"
    assert '%' in text
