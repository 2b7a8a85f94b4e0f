#!/usr/bin/env python
"""Serving soak: N concurrent clients on loopback for D seconds against `medtrain serve`; counts non-2xx answers and
compares the server's RSS after the soak with its RSS after warm-up (acceptance: 0 non-2xx, RSS after ≤ 1.2× before).

Model: a registered-like model folder of `--arch` (random weights, `--size` px, 7 classes), served with the default
`ServeConfig` limits (onnxruntime backend, ONNX exported into a scratch cache). Clients loop until the deadline,
each request one of: PNG (model size), JPEG (4× model size), a 3-image /predict/batch, /metadata, /health.
Usage:  python benchmarks/serve_soak.py [--seconds 60] [--clients 16] [--smoke] [--no-append] [--results PATH]
Appends a table to benchmarks/RESULTS.md (machine, date, command)."""
import argparse, collections, concurrent.futures as cf, io, os, platform, shutil, socket, subprocess, sys, tempfile, threading, time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np, httpx, psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def cpu_name():
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or 'unknown CPU'

def encoded(size, fmt, seed):
    a = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    b = io.BytesIO(); Image.fromarray(a).save(b, fmt); return b.getvalue()

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=60)
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--arch', default='medcnn_small')
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--smoke', action='store_true', help="a few seconds with 4 clients (CI): checks the script, not the server's memory")
    ap.add_argument('--results', type=Path, default=ROOT/'benchmarks'/'RESULTS.md')
    ap.add_argument('--no-append', action='store_true')
    args = ap.parse_args()
    if args.smoke: args.seconds, args.clients = 4, 4

    from medtrain.models import build_model, save_model
    from medtrain.data import norm_stats
    work = Path(tempfile.mkdtemp(prefix='medtrain-soak-'))
    mean, std = norm_stats(3)
    classes = ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc']
    save_model(build_model(args.arch, 3, len(classes), size=args.size).eval(), work/'model',
               dict(arch=args.arch, n_in=3, classes=classes, size=args.size, mean=mean, std=std))
    port, log = free_port(), open(work/'server.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'medtrain', 'serve', '--model-path', str(work/'model'), '--host', '127.0.0.1',
                             '--port', str(port), '--log-level', 'warning'], stdout=log, stderr=subprocess.STDOUT, cwd=work,
                            env={**os.environ, 'MEDTRAIN_CACHE_DIR': str(work/'cache'), 'MPLBACKEND': 'Agg', 'GRADIO_TEMP_DIR': str(work/'gradio')})
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None: sys.exit("server exited:\n" + (work/'server.log').read_text())
            try:
                if httpx.get(url + '/ready', timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            if time.time() > deadline: sys.exit("server not ready after 300 s")
            time.sleep(0.5)
        server = psutil.Process(proc.pid)
        png, jpeg = encoded(args.size, 'PNG', 0), encoded(4 * args.size, 'JPEG', 1)
        kinds = ['png', 'png', 'jpeg', 'jpeg', 'batch', 'metadata', 'health']

        def request(client, kind):
            if kind == 'png': return client.post(url + '/predict', files={'file': ('a.png', png)})
            if kind == 'jpeg': return client.post(url + '/predict', files={'file': ('b.jpg', jpeg)})
            if kind == 'batch': return client.post(url + '/predict/batch', files=[('files', (f'{i}.png', png)) for i in range(3)])
            return client.get(url + '/' + kind)

        with httpx.Client(timeout=60) as c:   # warm-up: first-request allocations are not a leak
            for i in range(8 * len(kinds)): request(c, kinds[i % len(kinds)]).raise_for_status()
        rss_before = server.memory_info().rss
        counts, latencies, lock, peak = collections.Counter(), collections.defaultdict(list), threading.Lock(), [rss_before]
        end = time.time() + args.seconds

        def client_loop(k):
            rng = np.random.default_rng(k)
            with httpx.Client(timeout=60) as c:
                while time.time() < end:   # bounded: stops at the deadline
                    kind = kinds[rng.integers(len(kinds))]
                    t = time.perf_counter()
                    try: status = request(c, kind).status_code
                    except httpx.HTTPError as e: status = type(e).__name__
                    with lock: counts[(kind, status)] += 1; latencies[kind].append(time.perf_counter() - t)

        def sample():
            while time.time() < end: peak[0] = max(peak[0], server.memory_info().rss); time.sleep(0.5)
        start = time.time()
        with cf.ThreadPoolExecutor(args.clients + 1) as ex:
            futures = [ex.submit(client_loop, k) for k in range(args.clients)] + [ex.submit(sample)]
            for f in futures: f.result()
        wall = time.time() - start
        time.sleep(1)
        rss_after = server.memory_info().rss
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)

    total = sum(counts.values())
    bad = sum(n for (k, s), n in counts.items() if not (isinstance(s, int) and 200 <= s < 300))
    ratio = rss_after / rss_before
    rows = [f"| {kind} | {sum(n for (k, s), n in counts.items() if k == kind):,} | "
            f"{sum(n for (k, s), n in counts.items() if k == kind and not (isinstance(s, int) and 200 <= s < 300))} | "
            f"{np.percentile(np.asarray(latencies[kind]) * 1e3, 50):.1f} | {np.percentile(np.asarray(latencies[kind]) * 1e3, 99):.1f} |"
            for kind in dict.fromkeys(kinds) if latencies[kind]]
    verdict = 'PASS' if bad == 0 and (args.smoke or ratio <= 1.2) else 'FAIL'
    table = '\n'.join([
        f"### Serving soak{' (smoke)' if args.smoke else ''}: {args.clients} concurrent clients for {args.seconds:g} s, {args.arch} @ {args.size} px, loopback",
        '', f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} CPU cores, python {platform.python_version()}",
        f"- command: `{' '.join(['python benchmarks/serve_soak.py', *sys.argv[1:]])}`", '',
        '| request | count | non-2xx | p50 ms | p99 ms |', '|---|---:|---:|---:|---:|', *rows,
        f"| **all** | **{total:,}** ({total / wall:.0f}/s) | **{bad}** | | |", '',
        f"Server RSS: {rss_before / 2**20:.0f} MiB after warm-up, {peak[0] / 2**20:.0f} MiB peak, {rss_after / 2**20:.0f} MiB after "
        f"(**{ratio:.2f}×**; acceptance ≤ 1.2×, 0 non-2xx): **{verdict}**.", ''])
    print(table)
    if not args.no_append:
        with open(args.results, 'a') as f: f.write('\n' + table)
    sys.exit(0 if verdict == 'PASS' else 1)

if __name__ == '__main__': main()
