#!/usr/bin/env python
"""Serving latency: single-image p50/p99 over HTTP (`medtrain serve`, onnxruntime backend) against the raw
onnxruntime session on the same model, and HTTP throughput at concurrency 1/4/16/64.

Model: timm resnet18 + fastai head, random weights, 224 px, 7 classes (latency does not depend on the weights).
Usage:  python benchmarks/serve_latency.py [--n 200] [--requests 96] [--no-append]
        python benchmarks/serve_latency.py --code /tmp/old-checkout --label "before"   # the server from another checkout
        python benchmarks/serve_latency.py --label "after, no batching" --server-args "--max-batch 1"
Appends a table to benchmarks/RESULTS.md (machine, date, command)."""
import argparse, concurrent.futures as cf, io, os, platform, shlex, socket, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np, httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def pct(xs, q): return float(np.percentile(np.asarray(xs) * 1e3, q))

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def cpu_name():
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown CPU'

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=200, help="sequential single-image requests / session runs")
    ap.add_argument('--requests', type=int, default=96, help="requests per concurrency level")
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--no-append', action='store_true')
    ap.add_argument('--code', type=Path, default=ROOT, help="checkout whose `medtrain serve` is measured (default: this one)")
    ap.add_argument('--label', default='', help="what is measured (shown in the table's title)")
    ap.add_argument('--server-args', default='', help="extra `medtrain serve` flags, e.g. '--max-batch 1'")
    ap.add_argument('--levels', default='1,4,16,64', help="client concurrency levels")
    args = ap.parse_args()

    from medtrain.models import build_model, save_model
    from medtrain.data import norm_stats
    from medtrain.export import export, load_input
    from medtrain.serve import OnnxPredictor
    tmp = Path(tempfile.mkdtemp(prefix='medtrain-bench-'))
    mean, std = norm_stats(3)
    classes = ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc']
    save_model(build_model('resnet18', 3, len(classes)).eval(), tmp/'model', dict(arch='resnet18', n_in=3, classes=classes, size=args.size, mean=mean, std=std))
    rec = export(tmp/'model', 'onnx')
    print(f"exported resnet18 to ONNX in {rec['seconds']}s, parity {max(rec['parity_max_abs_diff'].values()):.1e}")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), dtype=np.uint8))
    buf = io.BytesIO(); img.save(buf, 'PNG'); png = buf.getvalue()

    # raw onnxruntime session: model call only, and model call + decode/preprocess (what the server adds before the model)
    pred = OnnxPredictor(tmp/'model'/'model.onnx', rec and __import__('json').loads((tmp/'model'/'model.json').read_text()))
    x = load_input(io.BytesIO(png), pred.meta)[None]
    for _ in range(10): pred.logits(x)
    raw, raw_pre = [], []
    for _ in range(args.n):
        t = time.perf_counter(); pred.logits(x); raw.append(time.perf_counter() - t)
    for _ in range(args.n):
        t = time.perf_counter(); pred.logits(load_input(io.BytesIO(png), pred.meta)[None]); raw_pre.append(time.perf_counter() - t)
    del pred

    port = free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'medtrain', 'serve', '--model-path', str(tmp/'model'), '--port', str(port),
                             '--no-demo', '--log-level', 'warning', '--limit-concurrency', '1024', *shlex.split(args.server_args)],
                            env={**os.environ, 'PYTHONPATH': str(args.code)}, cwd=str(args.code),
                            stdout=open(tmp/'server.log', 'w'), stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(600):
            if proc.poll() is not None: sys.exit(f"server exited:\n{(tmp/'server.log').read_text()}")
            try:
                if httpx.get(url + '/ready', timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            time.sleep(0.5)
        else: sys.exit(f"server not ready after 300 s:\n{(tmp/'server.log').read_text()}")
        with httpx.Client(timeout=60) as c:
            post = lambda: c.post(url + '/predict', files={'file': ('x.png', png, 'image/png')})
            for _ in range(10): assert post().status_code == 200
            http = []
            for _ in range(args.n):
                t = time.perf_counter(); r = post(); http.append(time.perf_counter() - t); assert r.status_code == 200
        conc = {}
        for k in map(int, args.levels.split(',')):
            clients = [httpx.Client(timeout=120) for _ in range(k)]
            def worker(i, n):
                lat = []
                for _ in range(n):
                    t = time.perf_counter(); r = clients[i].post(url + '/predict', files={'file': ('x.png', png, 'image/png')})
                    lat.append(time.perf_counter() - t); assert r.status_code == 200
                return lat
            per = max(3, args.requests // k)
            t = time.perf_counter()
            with cf.ThreadPoolExecutor(k) as ex: lats = sum((f.result() for f in [ex.submit(worker, i, per) for i in range(k)]), [])
            wall = time.perf_counter() - t
            conc[k] = (len(lats) / wall, pct(lats, 50), pct(lats, 99))
            for cl in clients: cl.close()
    finally:
        proc.terminate(); proc.wait(30)

    load = os.getloadavg()
    lines = [f"### Serving latency — resnet18 @ {args.size} px, CPU, onnxruntime backend" + (f" — {args.label}" if args.label else ''),
             f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {cpu_name()}, {os.cpu_count()} cores "
             f"(shared with other engineers' jobs at the time: figures are noisy; load average {load[0]:.1f} / {load[1]:.1f} at the end); "
             f"onnxruntime {__import__('onnxruntime').__version__}; server code: {'this checkout' if args.code == ROOT else args.code}",
             f"- command: `{' '.join(['python benchmarks/serve_latency.py', *sys.argv[1:]])}`",
             "", "| measure | p50 ms | p99 ms |", "|---|---|---|",
             f"| raw onnxruntime session (model only, batch 1) | {pct(raw, 50):.1f} | {pct(raw, 99):.1f} |",
             f"| raw session + PNG decode/preprocess | {pct(raw_pre, 50):.1f} | {pct(raw_pre, 99):.1f} |",
             f"| HTTP POST /predict (sequential, keep-alive) | {pct(http, 50):.1f} | {pct(http, 99):.1f} |",
             "", f"HTTP p50 / raw session p50 = {pct(http, 50) / pct(raw, 50):.2f}× (target ≤ 1.25×); "
             f"vs raw session + preprocessing = {pct(http, 50) / pct(raw_pre, 50):.2f}×",
             "", "| concurrency | throughput img/s | p50 ms | p99 ms |", "|---|---|---|---|",
             *[f"| {k} | {v[0]:.1f} | {v[1]:.1f} | {v[2]:.1f} |" for k, v in conc.items()], ""]
    print('\n'.join(lines))
    if not args.no_append:
        res = ROOT/'benchmarks'/'RESULTS.md'
        head = '' if res.exists() else "# Benchmark results\n\nAppended by the scripts in `benchmarks/`; newest last.\n\n"
        with open(res, 'a') as f: f.write(head + '\n'.join(lines) + '\n')

if __name__ == '__main__': main()
