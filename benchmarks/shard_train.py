#!/usr/bin/env python
"""Train from webdataset shards of >= 1 million generated small images with flat memory: img/s and peak RSS, in one
process and split over 2 processes (torchrun, gloo on CPU).

    python benchmarks/shard_train.py --n 1000000 --train-images 200000   # writes the shards once (reused later), then both runs
    python benchmarks/shard_train.py --n 20000 --train-images 4000 --no-record   # smoke

The images are streamed, never listed or held: webdataset reads the tar shards in order, `split_by_node` gives each
torchrun rank its own shards and `split_by_worker` each loader worker its own, every image is decoded by medtrain's
decoder (`medtrain.images.open_image`) on the way, and the model (medcnn_small, 28 px, 1 channel) trains on batches as
they arrive; DDP (gloo) averages the gradients of the 2 ranks. RSS (process + its loader worker) is sampled all along:
"flat" means the last sample is no larger than the first after warm-up, however many images went by. Each run trains
on `--train-images` images of the whole set (one pass over the 1 M would take ~20 min per run on 2 shared cores).
"""
import argparse, io, json, os, platform, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

def rss_mib(proc) -> float:
    "Resident memory of `proc` and its children (the loader workers), MiB."
    total = proc.memory_info().rss
    for c in proc.children(recursive=True):
        try: total += c.memory_info().rss
        except Exception: pass
    return total / 2**20

def _write_shard(args):
    "One tar shard of images `start..stop` (webdataset layout: KEY.png + KEY.cls); each image is unique (its index in its first pixels)."
    import tarfile, numpy as np
    from PIL import Image
    path, start, stop, size = args
    base = np.random.default_rng(0).integers(0, 255, (64, size, size), np.uint8)
    tmp = Path(str(path) + '.part')
    with tarfile.open(tmp, 'w') as tar:
        for i in range(start, stop):
            im = base[i % 64] ^ np.uint8(i % 251)
            im.flat[:4] = np.frombuffer(i.to_bytes(4, 'little'), np.uint8)
            b = io.BytesIO(); Image.fromarray(im).save(b, 'PNG', compress_level=1)
            for name, data in ((f'{i:08d}.png', b.getvalue()), (f'{i:08d}.cls', str(i % 7).encode())):
                info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
    tmp.rename(path)   # a shard is there whole or not at all: an interrupted write resumes at the missing shards

def write(folder: Path, n: int, size: int, shard_size: int, procs: int = 2) -> float:
    "Write `n` generated images into `folder/shard-NNNNNN.tar` with `procs` processes (shards already there are kept); returns seconds."
    import multiprocessing as mp
    from fastprogress.fastprogress import progress_bar
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder/f'shard-{j:06d}.tar', j * shard_size, min(n, (j + 1) * shard_size), size) for j in range(-(-n // shard_size))]
    todo, t = [j for j in jobs if not j[0].exists()], time.time()
    with mp.get_context('spawn').Pool(procs) as pool:
        for _ in progress_bar(pool.imap_unordered(_write_shard, todo), total=len(todo)): pass
    return time.time() - t

def worker(a):
    "One torchrun rank (or the only process): stream, decode, train; rank 0 prints a JSON line."
    import numpy as np, psutil, torch, torch.nn.functional as F, webdataset as wds
    from medtrain.images import open_image
    from medtrain.models import build_model
    world, rank = int(os.environ.get('WORLD_SIZE', 1)), int(os.environ.get('RANK', 0))
    if world > 1: torch.distributed.init_process_group('gloo')
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // world - 1) if (os.cpu_count() or 2) > world else 1)
    torch.manual_seed(0)
    urls = [str(p) for p in sorted(Path(a.folder).glob('shard-*.tar'))]

    def decode(sample):
        im = np.asarray(open_image(io.BytesIO(sample['png']), n_in=1), np.float32)
        return torch.from_numpy((im - 127.5) / 64.)[None], int(sample['cls'])
    ds = (wds.WebDataset(urls, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker, shardshuffle=False, empty_check=False)
          .map(decode).batched(a.bs, partial=False))
    dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1, persistent_workers=False)
    model = build_model('medcnn_small', 1, 7)
    if world > 1: model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    steps = a.train_images // (a.bs * world)
    me, rss, seen, t0 = psutil.Process(), [], 0, None
    for step, (x, y) in enumerate(dl):
        if step == 3: t0, seen = time.perf_counter(), 0           # after warm-up (first batches, loader start)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        seen += len(x)
        if step % 20 == 0: rss.append(rss_mib(me))
        if rank == 0 and step % 200 == 0: print(f"step {step}/{steps}  {seen * world:,} images  rss {rss[-1]:.0f} MiB", file=sys.stderr, flush=True)
        if step + 1 >= steps: break
    dt = time.perf_counter() - t0
    rss.append(rss_mib(me))
    out = dict(rank=rank, images=seen * world, seconds=dt, img_s=seen * world / dt, steps=step + 1,
               rss_first=rss[1] if len(rss) > 1 else rss[0], rss_last=rss[-1], rss_peak=max(rss))
    if world > 1:
        peaks = [None] * world; torch.distributed.all_gather_object(peaks, out['rss_peak'])
        out['rss_peak_per_rank'] = peaks
        torch.distributed.destroy_process_group()
    if rank == 0: print(json.dumps(out), flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=1_000_000, help="images in the shards"); ap.add_argument('--size', type=int, default=28)
    ap.add_argument('--shard-size', type=int, default=10_000); ap.add_argument('--out', type=Path, default=Path('/tmp/medtrain-shard-bench'))
    ap.add_argument('--train-images', type=int, default=200_000, help="images each run trains on (spread over the ranks)")
    ap.add_argument('--bs', type=int, default=128); ap.add_argument('--procs', default='1,2', help="process counts to compare")
    ap.add_argument('--write-procs', type=int, default=2, help="processes writing the shards")
    ap.add_argument('--no-record', action='store_true'); ap.add_argument('--_worker', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._worker: a.folder = a._worker; return worker(a)
    folder = a.out/f'n{a.n}-s{a.size}'
    wrote = None
    if not (folder/'done').exists():
        print(f"writing {a.n:,} images into shards of {a.shard_size:,} under {folder} ...", flush=True)
        wrote = write(folder, a.n, a.size, a.shard_size, a.write_procs); (folder/'done').touch()
    n_shards, disk = len(list(folder.glob('*.tar'))), sum(f.stat().st_size for f in folder.glob('*.tar')) / 2**20
    rows = []
    for k in map(int, a.procs.split(',')):
        cmd = ([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(k)] if k > 1 else [sys.executable]) + \
              [__file__, '--_worker', str(folder), '--train-images', str(a.train_images), '--bs', str(a.bs)]
        print(f"training on {a.train_images:,} images in {k} process{'es' * (k > 1)} ...", flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)})
        if r.returncode: sys.exit(f"run with {k} processes failed:\n{r.stderr[-4000:]}")
        res = json.loads(next(l for l in reversed(r.stdout.splitlines()) if l.startswith('{')))
        rows.append((k, res))
    load = os.getloadavg()
    lines = [f"### Training from shards — {a.n:,} × {a.size} px PNG, {n_shards} shards, {disk:,.0f} MiB",
             f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.node()}, {os.cpu_count()} CPU cores, python {platform.python_version()}; "
             f"load average {load[0]:.1f} / {load[1]:.1f} at the end (the cores were shared with other engineers' jobs: figures are noisy)",
             f"- command: `python benchmarks/shard_train.py --n {a.n} --train-images {a.train_images} --bs {a.bs}`"
             + (f"; shards written at {a.n / wrote:,.0f} img/s" if wrote else "; shards reused"),
             f"- medcnn_small, 1 ch, bs {a.bs} per rank, AdamW; webdataset streaming (split_by_node / split_by_worker, 1 loader worker per rank), "
             "medtrain's decoder; RSS = rank process + its loader worker, sampled every 20 steps", "",
             "| processes | images trained | img/s (all ranks) | RSS after warm-up | RSS at the end | peak RSS per rank |", "|---|---:|---:|---:|---:|---:|",
             *[f"| {k} | {r['images']:,} | {r['img_s']:,.0f} | {r['rss_first']:,.0f} MiB | {r['rss_last']:,.0f} MiB | "
               f"{', '.join(f'{p:,.0f}' for p in r.get('rss_peak_per_rank', [r['rss_peak']]))} MiB |" for k, r in rows], ""]
    print('\n'.join(lines))
    if not a.no_record:
        with open(Path(__file__).parent/'RESULTS.md', 'a') as f: f.write('\n' + '\n'.join(lines) + '\n')

if __name__ == '__main__': main()
