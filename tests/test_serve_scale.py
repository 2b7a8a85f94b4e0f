"""Serving at scale over real HTTP: one `medtrain serve --workers 2` process following `lesions@production` in a registry
(hot reload), micro-batching, Prometheus metrics shared by the workers, SageMaker's `/ping` and `/invocations`."""
import concurrent.futures as cf, contextlib, io, os, re, socket, subprocess, sys, time
from pathlib import Path
import httpx, pytest
from PIL import Image
from conftest import medtrain_inproc

KEY = 'test-key-0123456789'
AUTH = {'Authorization': f'Bearer {KEY}'}

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _png(seed=0, side=40):
    b = io.BytesIO(); Image.effect_noise((side, side), 20 + seed).convert('RGB').save(b, 'PNG'); return b.getvalue()

@pytest.fixture(scope='module')
def farm(trained_run, tmp_path_factory):
    "Two registered versions of the tiny model (v1 in production) served by 2 worker processes that re-read the registry every 0.3 s."
    d = tmp_path_factory.mktemp('serve-scale')
    reg = d/'registry'
    for _ in range(2): medtrain_inproc('registry', 'register', trained_run, '--name', 'lesions', '--registry', reg, check=True)
    medtrain_inproc('registry', 'promote', 'lesions', '1', '--registry', reg, check=True)
    port, log_path = _free_port(), d/'server.log'
    log = open(log_path, 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'medtrain', 'serve', '--model-path', 'lesions@production', '--registry', str(reg),
                             '--port', str(port), '--workers', '2', '--reload-interval-s', '0.3', '--max-wait-ms', '300',
                             '--body-timeout-s', '20', '--no-demo', '--log-level', 'warning'],
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, 'MPLBACKEND': 'Agg', 'MEDTRAIN_CACHE_DIR': str(d/'cache'), 'MEDTRAIN_API_KEY': KEY})
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 240
        while not _ready(url):   # a worker takes connections only once its model is loaded (create_app load_first)
            assert proc.poll() is None, log_path.read_text()
            assert time.time() < deadline, "server not ready after 240 s\n" + log_path.read_text()
            time.sleep(0.5)
        yield dict(url=url, proc=proc, registry=reg, log=log_path)
    finally:
        proc.terminate()
        try: proc.wait(30)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()

def _ready(url):
    try: return httpx.get(url + '/ready', timeout=2).status_code == 200
    except httpx.TransportError: return False

def _predict(url, data, name='x.png'):
    r = httpx.post(url + '/predict', files={'file': (name, data)}, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()

def _versions_seen(url, n=8):
    return {httpx.get(url + '/metadata', headers=AUTH, timeout=10).json()['model']['version'] for _ in range(n)}

def _wait_for_version(farm, version, timeout_s=60):
    deadline = time.time() + timeout_s
    while _versions_seen(farm['url']) != {version}:
        assert farm['proc'].poll() is None, farm['log'].read_text()
        assert time.time() < deadline, f"still not serving v{version}\n" + farm['log'].read_text()
        time.sleep(0.3)

def test_serve_switches_version_after_promote_without_restart(farm):
    "Promote v2: every worker answers with v2, in /metadata and in each prediction; rollback brings v1 back; the same process throughout."
    from medtrain.registry import Registry
    assert _versions_seen(farm['url']) == {1} and _predict(farm['url'], _png())['model']['version'] == 1
    Registry(farm['registry']).promote('lesions', 2)
    _wait_for_version(farm, 2)
    assert {_predict(farm['url'], _png(i))['model']['version'] for i in range(6)} == {2}
    Registry(farm['registry']).rollback('lesions')
    _wait_for_version(farm, 1)
    m = _predict(farm['url'], _png())['model']
    assert (m['name'], m['version'], m['stage']) == ('lesions', 1, 'production')
    assert farm['proc'].poll() is None    # no restart: the server process started by the fixture is the one answering
    assert 'is now v2 (was v1)' in farm['log'].read_text()

def _metric(text, name):
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + ' ') or l.startswith(name + '{'))

def test_workers_share_prometheus_metrics(farm):
    "Two worker processes answer; /metrics, whichever of them answers it, counts the images predicted by both."
    import psutil
    assert len(psutil.Process(farm['proc'].pid).children()) >= 2   # uvicorn's workers (spawned) under the server process
    before = _metric(httpx.get(farm['url'] + '/metrics', headers=AUTH).text, 'medtrain_images_total')
    with cf.ThreadPoolExecutor(6) as ex: list(ex.map(lambda i: _predict(farm['url'], _png(i)), range(12)))
    seen = {_metric(httpx.get(farm['url'] + '/metrics', headers=AUTH).text, 'medtrain_images_total') for _ in range(6)}
    assert seen == {before + 12}, (before, seen)

def test_slow_client_cannot_stall_the_batch(farm):
    "A client that sends half its upload and stops holds no batch: eight other requests are answered, some together, meanwhile."
    host, port = farm['url'].split('//')[1].split(':')
    head = (b'POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ' + KEY.encode() +
            b'\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 5000\r\n\r\n')
    slow = [socket.create_connection((host, int(port)), timeout=30) for _ in range(2)]   # one on each worker, most likely
    try:
        for s in slow: s.sendall(head + b'--B\r\nContent-Disposition: form-data; name="file"; filename="s.png"\r\n\r\n' + _png()[:200])
        time.sleep(0.3)
        start = time.time()
        with cf.ThreadPoolExecutor(8) as ex: answers = list(ex.map(lambda i: _predict(farm['url'], _png(i), f'{i}.png'), range(8)))
        took = time.time() - start
        assert took < 10, took                                   # not waiting for the 20 s body timeout of the slow uploads
        assert [a['filename'] for a in answers] == [f'{i}.png' for i in range(8)]
        assert all(a['batch_size'] >= 1 for a in answers)       # answered by the batcher (whether two requests met in one batch depends on timing: the batching itself is tested in the serve chapter)
        for s in slow:
            s.setblocking(False)
            with pytest.raises(BlockingIOError): s.recv(10)      # the slow uploads are still waiting for the rest of their bodies
    finally:
        for s in slow: s.close()

def test_sagemaker_ping_and_invocations(farm):
    "SageMaker's routes: /ping is open like /ready; /invocations takes the raw image body, with /predict's key, limits and answer."
    url = farm['url']
    assert httpx.get(url + '/ping').status_code == 200
    data = _png(3)
    assert httpx.post(url + '/invocations', content=data, headers={'Content-Type': 'image/png'}).status_code == 401
    r = httpx.post(url + '/invocations', content=data, headers={'Content-Type': 'image/png', **AUTH}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()['probabilities'] == pytest.approx(_predict(url, data)['probabilities'], abs=1e-5)
    r = httpx.post(url + '/invocations', content=b'{"not": "an image"}', headers={'Content-Type': 'application/json', **AUTH})
    assert r.status_code == 415 and 'unrecognised file type' in r.json()['detail']
    r = httpx.post(url + '/invocations', content=b'\0' * (25 * 2**20), headers={'Content-Type': 'image/png', **AUTH})
    assert r.status_code == 413
