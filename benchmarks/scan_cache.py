"""Start-up cost of a training run before its first step: the bad-file scan and the image cache, cold and warm.

Every `medtrain train` opens every image once (the bad-file scan, which also hashes it for the manifest); with
`data.cache=disk` the first run also decodes every image into the cache. A second run on the same files (a tuning
trial, a cross-validation fold) reuses both: the scan's verdicts by file path, size and modification time, the
images by the cache key. This prints the seconds of each step, cold and warm, and appends them to RESULTS.md.

    python benchmarks/scan_cache.py --n 5000 --size 512          # 5,000 synthetic lesion PNGs of 512 px, cached at 128 px
    python benchmarks/scan_cache.py --n 50 --size 64 --no-record  # smoke
"""
import argparse, os, platform, shutil, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def run(a) -> str:
    from medtrain.config import SyntheticConfig
    from medtrain.data import make_synthetic
    from medtrain.scan import apply_bad_file_policy, ScanCache
    from medtrain.cache import ImageCache
    work = Path(a.work_dir or tempfile.mkdtemp(prefix='medtrain-scan-bench-'))
    # medtrain's synthetic lesions, reused when already generated with the same settings
    df = make_synthetic(work/f'synthetic-{a.size}-{a.n}', SyntheticConfig(n_images=a.n, image_size=a.size, n_classes=2, majority=0.5))
    paths = list(df.path)
    cache_dir = work/'cache'
    shutil.rmtree(cache_dir, ignore_errors=True)
    rows = []
    def timed(what, f):
        t = time.perf_counter(); f(); rows.append((what, time.perf_counter() - t))
    timed('scan, no cache', lambda: apply_bad_file_policy(df, progress=False))
    for run in ('first run (cold)', 'second run (warm)'):
        timed(f'scan, {run}', lambda: apply_bad_file_policy(df, progress=False, cache=ScanCache(cache_dir/'scan.sqlite')))
        timed(f'image cache at {a.train_size} px, {run}', lambda: ImageCache.build(paths, a.train_size, 3, cache_dir, progress=False))
    lines = [f"### Start-up: bad-file scan and image cache, {a.n:,} synthetic lesion PNGs of {a.size} px",
             '', f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, python {platform.python_version()}",
             f"- command: `python benchmarks/scan_cache.py --n {a.n} --size {a.size} --train-size {a.train_size}`",
             '', '| step | seconds | files/s |', '|---|---:|---:|']
    lines += [f"| {what} | {s:.2f} | {a.n / s:,.0f} |" for what, s in rows]
    cold = sum(s for w, s in rows if 'cold' in w); warm = sum(s for w, s in rows if 'warm' in w)
    lines.append(f"\nBefore the first training step: {cold:.2f} s on the first run, {warm:.2f} s on a later one ({cold / warm:,.0f}× less).")
    return '\n'.join(lines) + '\n'

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=5000, help="number of image files")
    ap.add_argument('--size', type=int, default=512, help="side of the files in px")
    ap.add_argument('--train-size', type=int, default=128, help="side the image cache stores (data.size)")
    ap.add_argument('--work-dir', help="where files and caches go (default: a new temp dir)")
    ap.add_argument('--no-record', action='store_true', help="print only; do not append to benchmarks/RESULTS.md")
    a = ap.parse_args()
    table = run(a)
    print(table)
    if not a.no_record:
        with (ROOT/'benchmarks'/'RESULTS.md').open('a') as f: f.write('\n' + table)

if __name__ == '__main__': main()
