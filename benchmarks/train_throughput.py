#!/usr/bin/env python
"""Training throughput: the plain fastai pipeline a user would write vs medtrain's (decode-once cache), side by side.

For one model/size/batch/precision and one data set, in ONE process (so both see the same machine load):

  (a) plain   — `DataBlock` with PIL `item_tfms=Resize` + `aug_transforms` from image files, `vision_learner`,
                fastai's default DataLoader workers;
  (b) medtrain — `medtrain.train.build_learner` with `data.cache=disk` (uint8 memory-mapped cache, whole-batch
                gather, the same batch transforms), plus `train.channels_last` / `train.compile` when asked;
  (c) synthetic — the same model stepping on tensors already in device memory: the upper bound, no input pipeline.

Same model (timm via fastai's `create_timm_model`), optimizer (AdamW), lr, one-cycle schedule, seed and data.
Throughput is measured in interleaved rounds (plain, medtrain, synthetic, plain, …) of `--steps` timed training
steps after `--warmup` steps; reported: img/s (median over rounds), data-wait fraction of step time, peak memory
(RSS of the process and its DataLoader workers on a CPU; `torch.cuda.max_memory_allocated` on a GPU) and the
ratio medtrain/plain. Then each pipeline trains `--epochs` full epochs back to back: mean epoch time (train +
validation; the cache already built — its one-off build time is reported separately) and the validation accuracy.
Finally onnxruntime CPU batch inference throughput of resnet18 at 224 px.

Appends the table (machine, date, exact command) to benchmarks/RESULTS.md.

  python benchmarks/train_throughput.py --set gray28            # 28 px grayscale MedMNIST-like, medcnn_small
  python benchmarks/train_throughput.py --set rgb128            # 128 px RGB, resnet18
  python benchmarks/train_throughput.py --set rgb128 --source-size 512   # files stored at 512 px, trained at 128 px
  python benchmarks/train_throughput.py --set rgb224 --arch resnet50 --precision bf16 --bs 256   # the GPU target
  python benchmarks/train_throughput.py --smoke                 # a few steps, tiny data (CI)
"""
from __future__ import annotations
import argparse, os, platform, shlex, statistics, sys, tempfile, threading, time, warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore')

import numpy as np, pandas as pd, psutil, torch
from PIL import Image
from fastai.vision.all import (DataBlock, ImageBlock, CategoryBlock, ColReader, ColSplitter, PILImage, PILImageBW, Resize,
                               ResizeMethod, aug_transforms, Normalize, vision_learner, CrossEntropyLossFlat, accuracy,
                               Callback, CancelFitException)

from medtrain.config import load_config, SyntheticConfig, seed_everything
from medtrain.data import make_synthetic, assign_splits, norm_stats
from medtrain.callbacks import build_opt
from medtrain.cache import ImageCache
from medtrain.train import build_learner
from medtrain.prepare import Split
from medtrain.models import build_model

SETS = {   # name: (image side on disk = model input size, channels, default arch, default n_images)
    'gray28': (28, 1, 'medcnn_small', 4000),
    'rgb128': (128, 3, 'resnet18', 1200),
    'rgb224': (224, 3, 'resnet50', 4000),
}

# ---------------------------------------------------------------- data
def make_set(root: Path, name: str, n_images: int, seed: int = 42, progress: bool = True, source_size: int | None = None) -> pd.DataFrame:
    """A medical-like labelled image set as files on disk (PNG): medtrain's synthetic lesions, grayscale for `gray*`.
    The files are `source_size` px square (default: the set's model input size, i.e. already resized)."""
    _, n_in, _, _ = SETS[name]
    size = source_size or SETS[name][0]
    src = make_synthetic(root/f'synthetic-{size}-{n_images}', SyntheticConfig(n_images=n_images, image_size=size, n_classes=7,
                         majority=0.4), seed=seed, progress=progress)
    if n_in == 3: return assign_splits(src, 0.2, 0.0, seed)
    out = root/f'{name}-{size}-{n_images}'
    if not (out/'done').exists():   # MedMNIST-like: single-channel 8-bit PNGs
        out.mkdir(parents=True, exist_ok=True)
        for p in src.path: Image.open(p).convert('L').save(out/Path(p).name)
        (out/'done').touch()
    df = src.assign(path=[str(out/Path(p).name) for p in src.path])
    return assign_splits(df, 0.2, 0.0, seed)

# ---------------------------------------------------------------- measurement
class StepTimer(Callback):
    "Per training step: time waiting for the batch and total step time; cancels the fit after `n_steps`."
    order = 99
    def __init__(self, n_steps=None, sync=None): self.n_steps, self.sync, self.waits, self.steps = n_steps, sync, [], []
    def before_epoch(self): self.t_end = None
    def before_batch(self):
        if not self.training: return
        self.t_start = time.perf_counter()
        if self.t_end is not None: self.waits.append(self.t_start - self.t_end)
    def after_batch(self):
        if not self.training: return
        if self.sync: self.sync()
        t = time.perf_counter()
        if self.t_end is not None: self.steps.append(t - self.t_end)
        self.t_end = t
        if self.n_steps and len(self.steps) >= self.n_steps: raise CancelFitException()

class PeakRSS:
    "Peak RSS of this process plus its children (DataLoader workers), sampled every 50 ms while active."
    def __init__(self): self.peak, self._on = 0, False
    def __enter__(self):
        self.peak, self._on = 0, True
        self.t = threading.Thread(target=self._run, daemon=True); self.t.start(); return self
    def _run(self):
        me = psutil.Process()
        while self._on:
            try: rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error: rss = 0
            self.peak = max(self.peak, rss); time.sleep(0.05)
    def __exit__(self, *a): self._on = False; self.t.join()

def _sync(device):
    return (lambda: torch.cuda.synchronize()) if device.type == 'cuda' else None

def measure_steps(learn, n_steps, warmup, device, lr):
    "Train `warmup + n_steps` steps; img/s over the timed steps, data-wait fraction, peak memory."
    timer = StepTimer(warmup + n_steps, _sync(device))
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as mem, learn.no_bar(), learn.no_logging():
        learn.fit(1, lr, cbs=[timer])
    steps, waits = timer.steps[warmup:], timer.waits[warmup:]
    bs = learn.dls.train.bs
    peak = torch.cuda.max_memory_allocated() if device.type == 'cuda' else mem.peak
    return dict(img_s=bs * len(steps) / sum(steps), wait=sum(waits) / sum(steps), peak=peak)

def measure_synthetic(arch, n_in, n_out, size, bs, device, precision, channels_last, n_steps, warmup, lr):
    "The model alone stepping on one batch already in device memory: the throughput ceiling."
    seed_everything(0)
    model = build_model(arch, n_in, n_out, size=size).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(bs, n_in, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, n_out, (bs,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    dtype = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=precision == 'fp16')
    sync, times = _sync(device), []
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as mem:
        for i in range(warmup + n_steps):
            t = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            scaler.scale(loss).backward(); scaler.step(opt); scaler.update(); opt.zero_grad(set_to_none=True)
            if sync: sync()
            if i >= warmup: times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() if device.type == 'cuda' else mem.peak
    return dict(img_s=bs * len(times) / sum(times), wait=0.0, peak=peak)

class EpochTimer(Callback):
    "Wall time of each epoch, training and validation together."
    order = 99
    def before_fit(self): self.times = []
    def before_epoch(self): self.t = time.perf_counter()
    def after_epoch(self): self.times.append(time.perf_counter() - self.t)

def fit_epochs(learn, epochs, lr, device):
    timer = EpochTimer()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr, cbs=[timer])
    acc = float(learn.recorder.values[-1][learn.recorder.metric_names.index('accuracy') - 1])
    return dict(epoch_s=statistics.mean(timer.times), epoch_times=timer.times, accuracy=acc)

# ---------------------------------------------------------------- the two pipelines
def plain_learner(df, size, n_in, arch, bs, precision, device, seed, num_workers=None):
    "What a fastai user writes: a DataBlock over the files, PIL item transforms, aug_transforms, vision_learner."
    seed_everything(seed)
    dblock = DataBlock(blocks=(ImageBlock(PILImageBW if n_in == 1 else PILImage), CategoryBlock),
                       get_x=ColReader('path'), get_y=ColReader('label'), splitter=ColSplitter('is_valid'),
                       item_tfms=Resize(size, method=ResizeMethod.Squish),
                       batch_tfms=[*aug_transforms(flip_vert=True), Normalize.from_stats(*norm_stats(n_in))])
    kw = {} if num_workers is None else dict(num_workers=num_workers)   # None: fastai's default (all cores)
    dls = dblock.dataloaders(df.assign(is_valid=df.split == 'valid'), bs=bs, device=device, **kw)
    learn = vision_learner(dls, arch, pretrained=False, n_in=n_in, loss_func=CrossEntropyLossFlat(),
                           opt_func=build_opt('adamw', 0.01), metrics=accuracy)
    if precision != 'fp32' and device.type == 'cuda': learn = learn.to_fp16() if precision == 'fp16' else learn.to_bf16()
    return learn   # on a CPU plain fastai has no mixed precision (its MixedPrecision is CUDA-only)

def medtrain_config(args, n_in, cache_dir, bs, fast=True):
    "medtrain's config for the run; `fast=False`: the cache only (fp32, no channels-last, no compile), same compute as plain."
    precision, cl, comp = (args.precision, args.channels_last, args.compile) if fast else ('fp32', False, False)
    sets = [f'data.size={args.size}', f'model.arch={args.arch}', f'model.n_in={n_in}', f'train.bs={bs}', f'train.lr={args.lr}',
            f'train.device={args.device}', f'train.precision={precision}', 'train.opt=adamw', 'train.wd=0.01',
            f'train.seed={args.seed}', 'augment.flip_vert=true', 'data.cache=disk', f'data.cache_dir={cache_dir}',
            f'train.channels_last={str(cl).lower()}', f'train.compile={str(comp).lower()}',
            f'train.num_workers={args.workers}', 'train.progress=false']
    return load_config(overrides=sets, environ={})

def medtrain_learner(cfg, df, classes, n_in, device, path):
    from fastai.metrics import accuracy as acc
    split = Split(df, list(classes), n_in, version='', manifest=df)   # the benchmark's own table: no scan, no manifest needed
    learn = build_learner(cfg, split, device, path, pretrained=False)   # precision callbacks come from build_callbacks
    learn.metrics = [acc]   # the same metric (and the same cost per epoch) as the plain learner
    return learn

# ---------------------------------------------------------------- onnxruntime
def onnx_throughput(bs=32, n_runs=5, size=224, out_dir=None):
    "onnxruntime CPU batch inference img/s of a (random-weight) resnet18 at 224 px."
    import onnxruntime as ort, timm
    model = timm.create_model('resnet18', num_classes=7).eval()
    f = Path(out_dir or tempfile.mkdtemp())/'resnet18.onnx'
    x = torch.randn(bs, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (x,), str(f), input_names=['x'], output_names=['y'], dynamic_axes={'x': {0: 'b'}}, dynamo=False)
    sess = ort.InferenceSession(str(f), providers=['CPUExecutionProvider'])
    xn = x.numpy(); sess.run(None, {'x': xn})
    t = time.perf_counter()
    for _ in range(n_runs): sess.run(None, {'x': xn})
    return bs * n_runs / (time.perf_counter() - t)

# ---------------------------------------------------------------- main
def machine() -> str:
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'
    cpu = platform.processor() or platform.machine()
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): pass
    return f"{cpu}, {os.cpu_count()} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {dev}; torch {torch.__version__}"

def _mb(b): return f"{b / 2**20:,.0f} MiB"

def run(args) -> str:
    device = torch.device(args.device if args.device != 'auto' else ('cuda' if torch.cuda.is_available() else 'cpu'))
    args.device = device.type
    size, n_in, arch, n_images = SETS[args.set]
    args.size, args.arch = size, args.arch or arch
    n_images = args.n_images or n_images
    work = Path(args.work_dir or tempfile.mkdtemp(prefix='medtrain-bench-'))
    log = (lambda *a: print(*a, flush=True)) if not args.quiet else (lambda *a: None)
    src_size = args.source_size or size
    log(f"data: {args.set}, {n_images} images of {src_size} px trained at {size} px, {n_in} channel(s) in {work}")
    df = make_set(work/'data', args.set, n_images, args.seed, progress=not args.quiet, source_size=args.source_size)
    classes = sorted(df.label.unique())
    cache_dir = Path(tempfile.mkdtemp(dir=work, prefix='cache-'))   # empty: the build below is timed cold
    t = time.perf_counter()
    ImageCache.build(df[df.split.isin(['train', 'valid'])].path, size, n_in, cache_dir, progress=not args.quiet)
    cache_build_s = time.perf_counter() - t
    if args.threads: torch.set_num_threads(args.threads)   # both pipelines: on a busy machine fewer threads oversubscribe less

    has_extras = args.precision != 'fp32' or args.channels_last or args.compile
    makers = {'plain fastai': lambda i: plain_learner(df, size, n_in, args.arch, args.bs, args.precision, device, args.seed, args.plain_workers)}
    # medtrain right after plain, so the ratio that counts is measured closest in time
    makers['medtrain'] = lambda i: medtrain_learner(medtrain_config(args, n_in, cache_dir, args.bs), df, classes, n_in, device, work/f'run-{i}')
    if has_extras:   # separate what the cache buys from what precision / memory format buy
        makers['medtrain (cache only)'] = lambda i: medtrain_learner(medtrain_config(args, n_in, cache_dir, args.bs, fast=False),
                                                                     df, classes, n_in, device, work/f'run-cache-{i}')
    learners = {name: make(0) for name, make in makers.items()}
    rounds = {k: [] for k in (*learners, 'synthetic')}
    for r in range(args.rounds):
        for name, learn in learners.items():
            rounds[name].append(measure_steps(learn, args.steps, args.warmup, device, args.lr))
            log(f"round {r + 1}: {name}: {rounds[name][-1]['img_s']:.0f} img/s, data wait {rounds[name][-1]['wait']:.0%}")
        rounds['synthetic'].append(measure_synthetic(args.arch, n_in, len(classes), size, args.bs, device, args.precision,
                                                     args.channels_last, args.steps, args.warmup, args.lr))
        log(f"round {r + 1}: synthetic: {rounds['synthetic'][-1]['img_s']:.0f} img/s")
    stats = {k: dict(img_s=statistics.median(m['img_s'] for m in v), wait=statistics.median(m['wait'] for m in v),
                     peak=max(m['peak'] for m in v)) for k, v in rounds.items()}
    epochs = {}
    if args.epochs:   # fresh learners, same seed: the validation metric after N epochs is comparable
        for name, make in makers.items():
            epochs[name] = fit_epochs(make(1), args.epochs, args.lr, device)
            log(f"{name}: {args.epochs} epochs, {epochs[name]['epoch_s']:.1f} s/epoch, valid accuracy {epochs[name]['accuracy']:.3f}")
    ort_img_s = None if args.no_onnx else onnx_throughput(bs=8 if args.smoke else 32, n_runs=1 if args.smoke else 5, out_dir=work)

    p, m = stats['plain fastai'], stats['medtrain']
    what = f"medtrain = cache{' + ' + args.precision if args.precision != 'fp32' else ''}{' + channels_last' if args.channels_last else ''}" \
           f"{' + compile' if args.compile else ''}" + ("; plain fastai on a CPU stays fp32 (fastai's mixed precision is CUDA-only)"
                                                       if device.type == 'cpu' and args.precision != 'fp32' else '')
    mem_kind = 'peak GPU memory allocated' if device.type == 'cuda' else 'peak RSS (+ workers)'
    lines = [f"### {args.set}: {args.arch}, {size} px, {n_in} ch, bs {args.bs}, {args.precision}"
             f"{', channels_last' if args.channels_last else ''}{', compile' if args.compile else ''} on {device.type}"
             f"{' (smoke)' if args.smoke else ''}",
             '', f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {machine()}",
             f"- command: `{' '.join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix()] + sys.argv[1:])}`",
             f"- data: {n_images} synthetic medical-like PNGs of {src_size}×{src_size} px"
             f"{' (resized to ' + str(size) + ' px for training)' if src_size != size else ' (already the training size)'} ({(df.split == 'train').sum()} train / {(df.split == 'valid').sum()} valid); "
             f"medtrain cache built once (cold, decode + resize + write) in {cache_build_s:.1f} s; {args.rounds} interleaved rounds of {args.steps} timed steps "
             f"(after {args.warmup} warm-up steps) per pipeline; plain fastai DataLoader workers: "
             f"{args.plain_workers if args.plain_workers is not None else 'fastai default (' + str(learners['plain fastai'].dls.train.fake_l.num_workers) + ')'}"
             f"; torch threads: {torch.get_num_threads()}; {what}",
             '', f"| pipeline | img/s (train step) | data wait / step | {mem_kind} | vs plain |", '|---|---:|---:|---:|---:|']
    for name, s in stats.items():
        lines.append(f"| {name} | {s['img_s']:,.0f} | {s['wait']:.1%} | {_mb(s['peak'])} | {s['img_s'] / p['img_s']:.2f}× |")
    lines.append(f"\nmedtrain / plain throughput: **{m['img_s'] / p['img_s']:.2f}×**; medtrain / synthetic upper bound: "
                 f"{m['img_s'] / stats['synthetic']['img_s']:.0%}. Compute floor: with no input pipeline at all, a training step "
                 f"takes {p['img_s'] / stats['synthetic']['img_s']:.2f}× of plain fastai's, the lowest ratio any pipeline can reach "
                 f"with this model and precision here.")
    if epochs:
        ep, em = epochs['plain fastai'], epochs['medtrain']
        if has_extras: lines_extra = f" The cache alone: {epochs['medtrain (cache only)']['epoch_s'] / ep['epoch_s']:.2f}×."
        else: lines_extra = ''
        lines += ['', f"| pipeline | epoch time (train + valid, mean of {args.epochs}) | valid accuracy after {args.epochs} epochs |",
                  '|---|---:|---:|']
        for name, e in epochs.items(): lines.append(f"| {name} | {e['epoch_s']:.2f} s | {e['accuracy']:.3f} |")
        lines.append(f"\nmedtrain epoch time / plain: **{em['epoch_s'] / ep['epoch_s']:.2f}×** (target ≤ 0.40×); with the one-off "
                     f"cache build spread over these {args.epochs} epochs: {(em['epoch_s'] + cache_build_s / args.epochs) / ep['epoch_s']:.2f}×." + lines_extra)
    if ort_img_s is not None: lines.append(f"\nonnxruntime CPU inference, resnet18 @ 224 px, batch {8 if args.smoke else 32}: **{ort_img_s:,.0f} img/s**.")
    table = '\n'.join(lines) + '\n'
    print('\n' + table)
    if args.results:
        res = Path(args.results)
        if not res.exists(): res.write_text("# Benchmark results\n\nAppended by the scripts in `benchmarks/`; newest last. "
                                            "CPU figures on the shared 2-core build machine are noisy.\n")
        with res.open('a') as f: f.write('\n' + table)
    return table

def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--set', choices=SETS, default='gray28', help="data set: side, channels and default model")
    ap.add_argument('--arch', help="timm model (default: the set's)")
    ap.add_argument('--n-images', type=int, help="images to generate (default: the set's)")
    ap.add_argument('--source-size', type=int, help="side of the image files on disk (default: the set's input size; "
                    "scans are usually stored larger than the size a model trains at)")
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default='fp32')
    ap.add_argument('--channels-last', action='store_true')
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    ap.add_argument('--steps', type=int, default=20, help="timed training steps per round")
    ap.add_argument('--warmup', type=int, default=3, help="untimed steps before each round")
    ap.add_argument('--rounds', type=int, default=2, help="interleaved rounds (plain, medtrain, synthetic)")
    ap.add_argument('--epochs', type=int, default=2, help="full epochs per pipeline for epoch time and validation accuracy (0: skip)")
    ap.add_argument('--workers', type=int, default=0, help="medtrain DataLoader workers (train.num_workers)")
    ap.add_argument('--plain-workers', type=int, help="plain fastai DataLoader workers (default: fastai's default)")
    ap.add_argument('--threads', type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--work-dir', help="where data, cache and run dirs go (default: a new temp dir)")
    ap.add_argument('--results', default=str(ROOT/'benchmarks'/'RESULTS.md'), help="append the table here ('' = don't)")
    ap.add_argument('--no-onnx', action='store_true', help="skip the onnxruntime inference figure")
    ap.add_argument('--smoke', action='store_true', help="tiny data, a few steps: checks that the table is produced")
    ap.add_argument('--quiet', action='store_true')
    args = ap.parse_args(argv)
    if args.smoke:
        args.n_images = args.n_images or 120
        args.steps, args.warmup, args.rounds, args.epochs, args.bs = 2, 1, 1, 1, min(args.bs, 16)
        if args.set != 'gray28': args.arch = args.arch or 'medcnn_small'
    return args

if __name__ == '__main__': run(parse())
