#!/usr/bin/env python
"""What a user gets without flags: plain fastai vs `medtrain train` with no flags vs the compute floor, whole process per epoch.

For each (data set, architecture), three separate processes run back to back on the same files (so they see the same machine
load, and their ratio is the meaningful figure):

  plain     — the DataBlock a fastai user writes: PIL `Resize` item transform, `aug_transforms`, `vision_learner`, fit_one_cycle;
  medtrain  — `python -m medtrain train` with no flags: only the data (a CSV of the same files and splits), size, arch and epochs;
              everything else is the defaults (`data.cache: auto`, `train.precision: auto`, `train.channels_last: auto`, …);
  floor     — the same model stepping on one batch already in memory for as many training steps and validation batches as an
              epoch has, at the precision/memory format medtrain chose: no input pipeline at all.

Per epoch = the whole process's wall time (imports, data preparation, training, evaluation) / epochs, as a user experiences it.
The pairs are run twice (`--repeats`) and the median taken. Prints a markdown table; `--results` appends it to RESULTS.md.

  python benchmarks/defaults.py                                   # gray28 (5,000 × 28 px, 1 ch) and rgb128 (128 px RGB), resnet18 + medcnn_small
  python benchmarks/defaults.py --sets gray28 --archs medcnn_small --n 300 --epochs 1 --repeats 1   # smoke
"""
from __future__ import annotations
import argparse, json, os, platform, shlex, statistics, subprocess, sys, tempfile, time, warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))
warnings.filterwarnings('ignore')

SETS = {'gray28': (28, 1, 5000), 'rgb128': (128, 3, 1000)}   # name: (size, channels, default images)

def plain(csv, size, n_in, arch, epochs, bs):
    "The plain fastai run (in this process)."
    import pandas as pd, torch
    from train_throughput import plain_learner
    df = pd.read_csv(csv, dtype={'label': str})
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')   # what fastai itself picks (`default_device()`)
    learn = plain_learner(df, size, n_in, arch, bs, 'fp32', device, 42)   # no flags: fp32, as a fastai user gets by default
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 2e-3)

def floor(csv, size, n_in, arch, epochs, bs, precision, channels_last):
    "The model alone on one in-memory batch: the steps and validation batches of `epochs` epochs."
    import pandas as pd, torch, contextlib
    from medtrain.models import build_model
    df = pd.read_csv(csv, dtype={'label': str})
    n_tr, n_va, n_out = (df.split == 'train').sum(), (df.split == 'valid').sum(), df.label.nunique()
    torch.manual_seed(0)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')   # the device `medtrain train` chose (train.device: auto)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(arch, n_in, n_out, size=size).to(device, memory_format=fmt)
    x = torch.randn(bs, n_in, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, n_out, (bs,), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(precision)
    ac = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    for _ in range(epochs):
        model.train()
        for _ in range(n_tr // bs):
            with ac(): loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        model.eval()
        with torch.no_grad():
            for _ in range(-(-n_va // bs)):
                with ac(): model(x)
    if device.type == 'cuda': torch.cuda.synchronize()

def timed(cmd, env=None) -> float:
    t = time.perf_counter()
    cmd = [str(c) for c in cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if r.returncode: raise SystemExit(f"{shlex.join(map(str, cmd))} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return time.perf_counter() - t

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sets', nargs='*', default=list(SETS)); ap.add_argument('--archs', nargs='*', default=['resnet18', 'medcnn_small'])
    ap.add_argument('--n', type=int, default=None, help='images per set (default: 5000 gray28, 1000 rgb128)')
    ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--repeats', type=int, default=2); ap.add_argument('--work-dir', default=None)
    ap.add_argument('--results', action='store_true'); ap.add_argument('--quiet', action='store_true')
    ap.add_argument('--_plain', nargs=6, help=argparse.SUPPRESS); ap.add_argument('--_floor', nargs=8, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._plain: c, s, n, arch, e, bs = a._plain; return plain(c, int(s), int(n), arch, int(e), int(bs))
    if a._floor: c, s, n, arch, e, bs, p, cl = a._floor; return floor(c, int(s), int(n), arch, int(e), int(bs), p, cl == 'True')
    from train_throughput import make_set, machine
    work = Path(a.work_dir or tempfile.mkdtemp(prefix='defaults-'))
    env = {'MEDTRAIN_CACHE_DIR': str(work/'cache'), 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}   # a fresh cache folder: the first run measures and builds; the caller's PYTHONPATH kept
    rows, me = [], [sys.executable, __file__]
    for set_name in a.sets:
        size, n_in, n_default = SETS[set_name]
        n = a.n or n_default
        df = make_set(work/'data', 'gray28' if n_in == 1 else 'rgb128', n, 42, progress=False)
        csv = work/f'{set_name}-{n}.csv'; df[['path', 'label', 'split']].to_csv(csv, index=False)
        for arch in a.archs:
            times = {'plain': [], 'medtrain': [], 'floor': []}
            auto = {}
            for r in range(a.repeats):
                run_dir = work/f'run-{set_name}-{arch}-{r}'
                times['plain'].append(timed([*me, '--_plain', csv, size, n_in, arch, a.epochs, a.bs]) / a.epochs)
                times['medtrain'].append(timed([sys.executable, '-m', 'medtrain', 'train', '--set', 'data.source=csv', '--set', f'data.path={csv}',
                                                '--set', f'data.size={size}', '--set', f'model.arch={arch}', '--set', f'train.epochs={a.epochs}',
                                                '--run-dir', run_dir, '--quiet'], env) / a.epochs)
                auto = json.loads((run_dir/'run.json').read_text()).get('auto', {})
                prec, cl = auto.get('train.precision', {}).get('value', 'fp32'), auto.get('train.channels_last', {}).get('value', False)
                times['floor'].append(timed([*me, '--_floor', csv, size, n_in, arch, a.epochs, a.bs, prec, cl]) / a.epochs)
                if not a.quiet: print(set_name, arch, {k: round(v[-1], 1) for k, v in times.items()}, flush=True)
            med = {k: statistics.median(v) for k, v in times.items()}
            chosen = ', '.join(f"{k.split('.')[1]}={v['value']}" for k, v in auto.items())
            rows.append(f"| {set_name} ({n} × {size} px, {n_in} ch) | {arch} | {med['plain']:.1f} | {med['medtrain']:.1f} | {med['floor']:.1f} | "
                        f"{med['medtrain'] / med['plain']:.2f}× | {med['medtrain'] / med['floor']:.2f}× | {chosen} |")
    text = '\n'.join(['| data | arch | plain fastai s/epoch | medtrain (no flags) s/epoch | compute floor s/epoch | medtrain / plain | medtrain / floor | auto chose |',
                      '|---|---|---:|---:|---:|---:|---:|---|', *rows])
    print(text)
    if a.results:
        load = os.getloadavg()
        with open(ROOT/'benchmarks'/'RESULTS.md', 'a') as f:
            f.write(f"\n### Defaults — plain fastai vs `medtrain train` with no flags vs the compute floor, whole process per epoch\n"
                    f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine()}; load average at the end "
                    f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} ({'idle' if load[0] < 2.5 else 'shared with other jobs: absolute seconds are noisy'}; "
                    f"the three processes of a row ran back to back, median of {a.repeats})\n"
                    f"- command: `python benchmarks/defaults.py {shlex.join(sys.argv[1:])}`; {a.epochs} epochs, bs {a.bs}; per epoch = "
                    "process wall time / epochs (imports, data preparation, the first run's measurement and cache build included)\n\n"
                    + text + '\n')

if __name__ == '__main__': main()
