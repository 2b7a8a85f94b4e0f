#!/usr/bin/env python
"""Where the small-image training step goes: one medtrain epoch at 28 px, split by phase, against the compute floor.

Two measurements, both in this one process, settings interleaved round by round (the machine is shared: medians over `--repeats`):

  epoch  — a medtrain Learner (`build_learner`, the defaults: memory cache, fp32, contiguous) trains one epoch while a timing
           callback (run before every other callback) stamps each event: data = from the end of one batch to the start of the
           next (the loader: cache gather, batch transforms, collation), forward (with `before_batch` callbacks), loss,
           backward, optimizer step (with zero_grad and `after_batch` callbacks: recorder, metrics, EMA…).
  floor  — the same model stepping on one batch already in memory (forward, loss, backward, AdamW step): ms per image for
           each batch size and torch thread count, eager and (with --compile) `torch.compile`d.

  python benchmarks/step_profile.py                                   # medcnn_small and resnet18, 28 px, 1000 images
  python benchmarks/step_profile.py --archs medcnn_small --n 200 --repeats 1 --bss 64 --threads 1   # smoke
"""
from __future__ import annotations
import argparse, os, platform, shlex, statistics, sys, tempfile, time, warnings
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore')

import torch
from fastai.callback.core import Callback
from medtrain.config import load_config
from medtrain.prepare import prepare_data
from medtrain.train import build_learner
from medtrain.models import build_model

CLOCK = time.process_time   # CPU seconds of this process (all its threads): on a shared, overloaded machine wall time mostly measures the wait for a core

PHASES = (('data', 'after_batch', 'before_batch'), ('forward', 'before_batch', 'after_pred'), ('loss', 'after_pred', 'after_loss'),
          ('backward', 'after_loss', 'after_backward'), ('step + callbacks', 'after_backward', 'after_batch'))

class PhaseTimer(Callback):
    "Stamps every training-batch event; `ms` holds the milliseconds of each phase, batch by batch."
    order = -1000
    def __init__(self): self.ms, self.last = defaultdict(list), {}
    def _stamp(self, event):
        if not self.training: return
        now = CLOCK()
        for name, start, end in PHASES:
            if end == event and start in self.last: self.ms[name].append(1000 * (now - self.last[start]))
        self.last[event] = now
    def before_epoch(self): self.last = {}
    def before_batch(self): self._stamp('before_batch')
    def after_pred(self): self._stamp('after_pred')
    def after_loss(self): self._stamp('after_loss')
    def after_backward(self): self._stamp('after_backward')
    def after_batch(self): self._stamp('after_batch')

def epoch_phases(learn) -> dict:
    "Median ms per training batch of each phase in one epoch, and the epoch's train and valid seconds."
    timer = PhaseTimer()
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(), learn.added_cbs(timer): learn.fit(1, 1e-3)
    total = time.perf_counter() - t0
    out = {name: statistics.median(v) for name, v in timer.ms.items()}
    out['batches'] = len(timer.ms['forward'])
    out['epoch s'] = total
    return out

def floor_ms_per_image(model, bs, n_in, size, n_out, steps, threads) -> float:
    "Median ms per image of `steps` training steps of `model` on one in-memory batch."
    torch.set_num_threads(threads)
    x, y = torch.randn(bs, n_in, size, size), torch.randint(0, n_out, (bs,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(steps + 1):
        t = CLOCK()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        if i: times.append(CLOCK() - t)   # the first step warms up (and compiles)
    return 1000 * statistics.median(times) / bs

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--archs', nargs='*', default=['medcnn_small', 'resnet18'])
    ap.add_argument('--n', type=int, default=1000); ap.add_argument('--size', type=int, default=28)
    ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--bss', type=int, nargs='*', default=[32, 64, 128, 256])
    ap.add_argument('--threads', type=int, nargs='*', default=sorted({1, torch.get_num_threads()}))
    ap.add_argument('--compile', action='store_true', help='also time torch.compile (inductor) on the floor')
    ap.add_argument('--clock', choices=['cpu', 'wall'], default='cpu', help='cpu: process CPU time (robust to other jobs); wall: perf_counter')
    ap.add_argument('--work-dir', default=None); ap.add_argument('--results', action='store_true')
    a = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if a.clock == 'cpu' else time.perf_counter
    work = Path(a.work_dir or tempfile.mkdtemp(prefix='step-profile-'))
    default_threads = torch.get_num_threads()
    cfg = load_config(overrides=[f'data.path={work}/data', f'data.synthetic.n_images={a.n}', f'data.synthetic.image_size={a.size}',
                                 f'data.size={a.size}', 'train.device=cpu', 'train.precision=fp32', 'train.channels_last=false',
                                 'data.cache=memory', 'train.progress=false'], environ={})
    split = prepare_data(cfg.data, progress=False)
    n_in, n_out = split.n_in, len(split.classes)
    learners = {arch: build_learner(cfg.model_copy(update={'model': cfg.model.model_copy(update={'arch': arch})}), split, progress=False)
                for arch in a.archs}
    epochs, floors = defaultdict(list), defaultdict(list)
    variants = [(arch, bs, th, comp) for arch in a.archs for bs in a.bss for th in a.threads for comp in ([False, True] if a.compile else [False])]
    models = {}
    for arch in a.archs:
        torch.manual_seed(0); models[arch, False] = build_model(arch, n_in, n_out, size=a.size)
        if a.compile:
            torch.manual_seed(0); models[arch, True] = torch.compile(build_model(arch, n_in, n_out, size=a.size))
    for r in range(a.repeats):
        for arch, learn in learners.items():
            torch.set_num_threads(default_threads)
            epochs[arch].append(epoch_phases(learn))
            print(f"round {r}: {arch} epoch {epochs[arch][-1]['epoch s']:.1f} s", flush=True)
        for v in variants:
            arch, bs, th, comp = v
            try: floors[v].append(floor_ms_per_image(models[arch, comp], bs, n_in, a.size, n_out, a.steps, th))
            except Exception as e: floors[v].append(float('nan')); print(f'{v}: {type(e).__name__}: {str(e)[:200]}', flush=True)
    torch.set_num_threads(default_threads)
    lines = [f'| arch | batches | data | forward | loss | backward | step + callbacks | ms per train batch (sum) | floor ms per batch (bs {learners[a.archs[0]].dls.train.bs}) | epoch s (train + valid) |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for arch in a.archs:
        med = {k: statistics.median(e[k] for e in epochs[arch]) for k in epochs[arch][0]}
        bs = learners[arch].dls.train.bs
        fl = floors.get((arch, bs, default_threads, False))
        s = sum(med[p] for p, *_ in PHASES)
        lines.append(f"| {arch} | {med['batches']:.0f} | " + ' | '.join(f'{med[p]:.1f}' for p, *_ in PHASES)
                     + f" | {s:.1f} | {statistics.median(fl) * bs if fl else float('nan'):.1f} | {med['epoch s']:.1f} |")
    lines += ['', '| arch | bs | torch threads | compiled | floor ms per image (median) |', '|---|---:|---:|---|---:|']
    for v in variants:
        lines.append(f'| {v[0]} | {v[1]} | {v[2]} | {"yes" if v[3] else "no"} | {statistics.median(floors[v]):.3f} |')
    text = '\n'.join(lines)
    print(text)
    if a.results:
        load = os.getloadavg()
        head = (f"\n### Where the small-image step goes — {', '.join(a.archs)}, {a.size} px, synthetic n={a.n} (issue O)\n"
                f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores, torch {torch.__version__}, shared (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end)\n"
                f"- command: `python benchmarks/step_profile.py {shlex.join(sys.argv[1:])}`; medians of {a.repeats} interleaved rounds, {a.clock} ms per training batch (cpu = process CPU time, both threads summed)\n\n")
        with open(ROOT/'benchmarks'/'RESULTS.md', 'a') as f: f.write(head + text + '\n')

if __name__ == '__main__': main()
