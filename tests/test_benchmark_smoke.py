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
