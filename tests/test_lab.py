"""JupyterLab on the project's environment (`make lab`): the server starts, lists the notebooks, and a kernel it starts
for a notebook is this environment's interpreter and imports this checkout's medtrain. Also: re-running notebooks
with tools/run_nbs.py keeps their outputs through nbdev_clean."""
import json, os, shutil, signal, socket, subprocess, sys, time, uuid
from pathlib import Path
import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _execute(ws_url, code, timeout_s=60):
    "Run `code` on a kernel over the server's websocket (Jupyter messaging protocol); returns (stdout, reply content)."
    import websocket
    ws = websocket.create_connection(ws_url, timeout=timeout_s)
    msg_id, out, reply, idle = uuid.uuid4().hex, [], None, False
    ws.send(json.dumps({'header': {'msg_id': msg_id, 'username': 'test', 'session': uuid.uuid4().hex, 'date': '',
                                   'msg_type': 'execute_request', 'version': '5.3'},
                        'parent_header': {}, 'metadata': {}, 'channel': 'shell', 'buffers': [],
                        'content': {'code': code, 'silent': False, 'store_history': False, 'user_expressions': {},
                                    'allow_stdin': False, 'stop_on_error': True}}))
    deadline = time.time() + timeout_s
    while time.time() < deadline and not (reply and idle):
        m = json.loads(ws.recv())
        if m.get('parent_header', {}).get('msg_id') != msg_id: continue
        t = m['header']['msg_type']
        if t == 'stream' and m['content']['name'] == 'stdout': out.append(m['content']['text'])
        elif t == 'error': out.append('\n'.join(m['content']['traceback']))
        elif t == 'execute_reply': reply = m['content']
        elif t == 'status' and m['content']['execution_state'] == 'idle': idle = True
    ws.close()
    return ''.join(out), reply

def test_jupyterlab_lists_notebooks_and_its_kernel_imports_medtrain(tmp_path):
    jupyter = BIN/'jupyter'
    assert jupyter.exists(), f"jupyter is not installed in {BIN} (make install)"
    port, token = _free_port(), uuid.uuid4().hex
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'JUPYTER_PREFER_ENV_PATH': '1', 'JUPYTER_RUNTIME_DIR': str(tmp_path/'runtime'),
           'JUPYTERLAB_WORKSPACES_DIR': str(tmp_path/'workspaces')}
    log = open(tmp_path/'lab.log', 'w')
    server = subprocess.Popen([str(jupyter), 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', '--ServerApp.port_retries=0',
                               f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={ROOT}',
                               '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.news_url=None',
                               '--LabApp.extension_manager=readonly', *(['--allow-root'] if os.geteuid() == 0 else [])],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base, auth = f'http://127.0.0.1:{port}', {'Authorization': f'token {token}'}
    try:
        with httpx.Client(base_url=base, headers=auth, timeout=30) as c:
            for _ in range(240):   # the first start builds nothing, but imports take a while on a busy machine
                assert server.poll() is None, f"jupyter lab exited:\n{(tmp_path/'lab.log').read_text()[-3000:]}"
                try:
                    if c.get('/api/status').status_code == 200: break
                except httpx.TransportError: pass
                time.sleep(0.5)
            else: raise AssertionError(f"jupyter lab did not answer:\n{(tmp_path/'lab.log').read_text()[-3000:]}")
            lab = c.get('/lab')
            assert lab.status_code == 200 and 'JupyterLab' in lab.text
            listed = {f['name'] for f in c.get('/api/contents/nbs').json()['content']}
            expected = {p.name for p in (ROOT/'nbs').glob('*.ipynb')}
            assert expected and expected <= listed, expected - listed
            assert 'tutorials' in listed
            specs = c.get('/api/kernelspecs').json()
            assert specs['default'] == 'python3', specs
            # what JupyterLab does when a notebook is opened: a session with the notebook's kernel (python3)
            s = c.post('/api/sessions', json={'path': 'nbs/index.ipynb', 'type': 'notebook', 'name': 'index.ipynb',
                                              'kernel': {'name': 'python3'}})
            assert s.status_code == 201, s.text
            kid = s.json()['kernel']['id']
            out, reply = _execute(f'ws://127.0.0.1:{port}/api/kernels/{kid}/channels?token={token}',
                                  'import sys, medtrain, medtrain.train\nprint(sys.prefix); print(medtrain.__file__)')
            assert reply and reply['status'] == 'ok', out
            prefix, mod_file = out.strip().splitlines()[-2:]
            assert Path(prefix).resolve() == Path(sys.prefix).resolve(), f"kernel runs {prefix}, not this environment {sys.prefix}"
            assert Path(mod_file).resolve() == (ROOT/'medtrain'/'__init__.py').resolve(), mod_file
            assert c.delete(f"/api/sessions/{s.json()['id']}").status_code == 204
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try: server.wait(20)
            except subprocess.TimeoutExpired: os.killpg(server.pid, signal.SIGKILL); server.wait()
        log.close()

def test_run_nbs_keeps_outputs_through_nbdev_clean(tmp_path):
    "tools/run_nbs.py: runs a notebook in place in this environment's kernel, skips `#| eval: false`, keeps the plot."
    import nbformat
    nb = nbformat.v4.new_notebook(metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}})
    nb.cells = [nbformat.v4.new_code_cell("import medtrain, matplotlib.pyplot as plt\nplt.figure(figsize=(2, 2)); plt.plot([0, 1], [1, 0]);"),
                nbformat.v4.new_code_cell("#| eval: false\nraise SystemExit('must not run')"),
                nbformat.v4.new_code_cell("#| slow\nprint('slow cell ran')"),
                nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame({'a': [1, 2]})"),
                nbformat.v4.new_code_cell("import warnings\nwarnings.warn_explicit('old API', FutureWarning, '/x/site-packages/lib.py', 3)"),
                nbformat.v4.new_code_cell("import sys\nprint('a message for the reader', file=sys.stderr)")]
    nb.cells[1].metadata['scrolled'] = True
    path = tmp_path/'demo.ipynb'
    nbformat.write(nb, path)
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'run_nbs.py'), str(path), '--flags', ''], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    cells = json.loads(path.read_text())['cells']
    assert 'image/png' in cells[0]['outputs'][-1]['data']        # the plot is kept
    assert cells[1]['outputs'] == [] and cells[2]['outputs'] == []  # eval: false and an unrequested flag did not run
    assert 'text/html' in cells[3]['outputs'][0]['data']            # the table is kept
    assert cells[4]['outputs'] == []                                 # a library's warning is dropped ...
    assert 'a message for the reader' in ''.join(cells[5]['outputs'][0]['text'])   # ... the notebook's own stderr stays
    # nbdev_clean stripped what changes at every run
    assert all(c['execution_count'] is None and c['metadata'] == {} for c in cells)
    assert all(o.get('execution_count') is None for c in cells for o in c['outputs'])
