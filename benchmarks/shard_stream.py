"""Stream many small images from webdataset-style shards with bounded memory; print img/s and peak RSS.

    python benchmarks/shard_stream.py --n 200000            # the issue's figure (writes ~200k PNGs into shards first)
    python benchmarks/shard_stream.py --n 2000 --no-record  # smoke

The streaming pass runs in a fresh subprocess, so its peak RSS is the pass alone (interpreter + libraries + one sample),
not the writer's. Results are appended to benchmarks/RESULTS.md unless --no-record.
"""
import argparse, io, json, os, platform, resource, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

def write(out: Path, n: int, size: int, shard_size: int):
    import numpy as np, webdataset as wds
    from PIL import Image
    from fastprogress.fastprogress import progress_bar
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, size, size), np.uint8)
    t = time.time()
    with wds.ShardWriter(str(out/'shard-%06d.tar'), maxcount=shard_size, verbose=0) as w:
        for i in progress_bar(range(n)):
            b = io.BytesIO(); Image.fromarray(base[i % 64] ^ np.uint8(i % 251)).save(b, 'PNG', compress_level=1)
            w.write({'__key__': f'{i:08d}', 'png': b.getvalue(), 'cls': str(i % 7).encode()})
    return time.time() - t

def stream(folder: str):
    "Child process: one pass over every shard through medtrain's decoder; prints a JSON line."
    from medtrain.shards import iter_shards
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t, n, px = time.time(), 0, 0
    for key, im, label, meta in iter_shards(folder, n_in=1):
        n += 1; px += im.size[0]
    dt = time.time() - t
    print(json.dumps(dict(n=n, seconds=dt, img_s=n / dt, rss_before_mb=rss0 / 1024, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=200_000); ap.add_argument('--size', type=int, default=28)
    ap.add_argument('--shard-size', type=int, default=10_000); ap.add_argument('--out', type=Path, default=Path('/tmp/medtrain-shard-bench'))
    ap.add_argument('--no-record', action='store_true'); ap.add_argument('--_stream')
    a = ap.parse_args()
    if a._stream: return stream(a._stream)
    folder = a.out/f'n{a.n}-s{a.size}'
    wrote = None
    if not (folder/'done').exists():
        wrote = write(folder, a.n, a.size, a.shard_size); (folder/'done').touch()
    disk = sum(f.stat().st_size for f in folder.glob('*.tar')) / 2**20
    r = json.loads(subprocess.run([sys.executable, __file__, '--_stream', str(folder)], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    line = (f"| {r['n']:,} × {a.size}px PNG, {len(list(folder.glob('*.tar')))} shards, {disk:.0f} MiB | {r['img_s']:,.0f} img/s "
            f"({r['seconds']:.1f} s) | {r['peak_rss_mb']:.0f} MiB (start {r['rss_before_mb']:.0f}) | "
            + (f"write {a.n / wrote:,.0f} img/s" if wrote else "shards reused") + " |")
    print("| data | stream (decode to PIL) | peak RSS | write |\n|---|---|---|---|\n" + line)
    if not a.no_record:
        res = Path(__file__).parent/'RESULTS.md'
        head = '' if res.exists() else '# Benchmark results\n\nEvery figure with its machine, date and command.\n'
        with res.open('a') as f:
            f.write(head + f"\n## Shard streaming — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n\nmachine: {platform.node()}, "
                    f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, python {platform.python_version()}  \n"
                    f"command: `python benchmarks/shard_stream.py --n {a.n} --size {a.size} --shard-size {a.shard_size}`\n\n"
                    "| data | stream (decode to PIL) | peak RSS | write |\n|---|---|---|---|\n" + line + '\n')

if __name__ == '__main__': main()
