"`benchmarks/train_throughput.py --smoke` runs end to end and produces its table (a speed is never asserted)."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_train_throughput_smoke(tmp_path):
    results = tmp_path/'RESULTS.md'
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'train_throughput.py'), '--smoke', '--quiet', '--channels-last',
                        '--precision', 'bf16', '--work-dir', str(tmp_path/'work'), '--results', str(results)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    table = results.read_text()
    for row in ('| plain fastai |', '| medtrain (cache only) |', '| medtrain |', '| synthetic |', 'onnxruntime CPU inference',
                'valid accuracy after 1 epochs', '- command: `', '- machine: '):
        assert row in table, row
    assert table.count('\n| ') >= 9 and 'img/s' in table

def test_scan_cache_smoke(tmp_path):
    "`benchmarks/scan_cache.py`: cold and warm start-up, each step timed (a speed is never asserted)."
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'scan_cache.py'), '--n', '40', '--size', '48', '--train-size', '32',
                        '--work-dir', str(tmp_path), '--no-record'], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    for row in ('| scan, no cache |', '| scan, first run (cold) |', '| scan, second run (warm) |',
                '| image cache at 32 px, first run (cold) |', '| image cache at 32 px, second run (warm) |', 'Before the first training step'):
        assert row in r.stdout, row
    assert (tmp_path/'cache'/'scan.sqlite').exists() and len(list((tmp_path/'cache').glob('*.npy'))) == 1

def test_serve_soak_smoke(tmp_path):
    "`benchmarks/serve_soak.py --smoke`: a few seconds of concurrent clients against `medtrain serve`, 0 non-2xx (no speed asserted)."
    results = tmp_path/'RESULTS.md'
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'serve_soak.py'), '--smoke', '--results', str(results)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = results.read_text()
    for row in ('| png |', '| jpeg |', '| batch |', '| **all** |', 'Server RSS:', '- command: `', '- machine: '):
        assert row in table, row
    assert '| **0** |' in table
