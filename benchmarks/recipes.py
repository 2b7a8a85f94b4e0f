#!/usr/bin/env python
"""`train.recipe: quick` vs `strong`, and each ingredient of `strong` alone, on the noisy + imbalanced synthetic set.

Every row is one `medtrain.train.train` run on the same data (generated once: `data.synthetic.noise` flips a fraction of the
labels, `majority` sets the largest class's share), the same seed and the no-flags defaults otherwise, scored on the held-out
*test* split (labels as generated, noise included) by `evaluate` without TTA. Prints a markdown table of balanced accuracy and
macro-F1 (mean over `--seeds` training seeds) and, with `--results`, appends it to benchmarks/RESULTS.md.

  OMP_NUM_THREADS=1 python benchmarks/recipes.py       # 1200 images, 28 px, noise 0.1, majority 0.6, 406 test images, medcnn_small, bs 32, 3 seeds
  python benchmarks/recipes.py --n 200 --seeds 1 --rows quick strong --quiet   # smoke
"""
from __future__ import annotations
import argparse, os, platform, shlex, statistics, sys, tempfile, time, warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore')

from medtrain.config import load_config, EvalConfig
from medtrain.train import train
from medtrain.evaluate import evaluate

ROWS = {   # name: overrides on top of the data/model settings; `quick` plus each ingredient, `strong` minus (or plus) each one
    'quick': ['train.recipe=quick'],
    'quick + 2× epochs': ['train.recipe=quick', 'train.epochs=10'],
    'quick + EMA 0.99': ['train.recipe=quick', 'train.ema=0.99'],
    'quick + label smoothing 0.1': ['train.recipe=quick', 'train.label_smoothing=0.1'],
    'quick + MixUp 0.2': ['train.recipe=quick', 'augment.mixup=0.2'],
    'strong': ['train.recipe=strong'],
    'strong − 2× epochs': ['train.recipe=strong', 'train.epochs=5'],
    'strong − EMA': ['train.recipe=strong', 'train.ema=null'],
    'strong − label smoothing': ['train.recipe=strong', 'train.label_smoothing=0'],
    'strong + MixUp 0.2': ['train.recipe=strong', 'augment.mixup=0.2'],
    'strong + progressive ½→1': ['train.recipe=strong', 'augment.progressive=PROGRESSIVE'],
}

def _mean_sd(xs): return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=1200, help='synthetic images')
    ap.add_argument('--noise', type=float, default=0.1); ap.add_argument('--majority', type=float, default=0.6)
    ap.add_argument('--arch', default='medcnn_small'); ap.add_argument('--size', type=int, default=28)
    ap.add_argument('--seeds', type=int, default=3); ap.add_argument('--first-seed', type=int, default=42)
    ap.add_argument('--set', nargs='*', default=['data.test_pct=0.35', 'train.bs=32'], help='more config overrides for every row (KEY=VALUE)')
    ap.add_argument('--rows', nargs='*', default=None, help='row names to run (exact); default all')
    ap.add_argument('--work-dir', default=None); ap.add_argument('--results', action='store_true'); ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args(argv)
    work = Path(a.work_dir or tempfile.mkdtemp(prefix='recipes-'))
    base = [f'data.path={work}/data', f'data.synthetic.n_images={a.n}', f'data.synthetic.image_size={a.size}', f'data.size={a.size}',
            f'data.synthetic.noise={a.noise}', f'data.synthetic.majority={a.majority}', f'model.arch={a.arch}', 'train.device=cpu', *a.set]
    rows = {k: v for k, v in ROWS.items() if a.rows is None or k in a.rows}
    table = []
    for name, extra in rows.items():
        scores, secs = [], []
        for s in range(a.seeds):
            extra = [e.replace('PROGRESSIVE', f'{{sizes: [{a.size // 2}, {a.size}], epochs: [3, 7]}}') for e in extra]
            cfg = load_config(overrides=base + extra + [f'train.seed={a.first_seed + s}'], environ={})
            t = time.time()
            res = train(cfg, work/f"{name.replace(' ', '_')}-{a.first_seed + s}", progress=False)
            secs.append(time.time() - t)
            m = evaluate(res.run_dir/'model', res.run_dir/'test.csv', res.run_dir/'test', progress=False, tta=False, cfg=EvalConfig(n_boot=10))
            scores.append((m['balanced_accuracy'], m['macro_f1']))
            if not a.quiet: print(f"{name} seed {a.first_seed + s}: balanced accuracy {scores[-1][0]:.3f}, macro-F1 {scores[-1][1]:.3f}, {secs[-1]:.0f} s", flush=True)
        table.append((name, *_mean_sd([b for b, _ in scores]), *_mean_sd([f for _, f in scores]), statistics.mean(secs),
                      ' / '.join(f'{b:.3f}' for b, _ in scores)))
    lines = ['| recipe | balanced accuracy (mean ± sd) | macro-F1 (mean ± sd) | train s | balanced accuracy per seed |', '|---|---:|---:|---:|---|']
    lines += [f'| {n} | {b:.3f} ± {bs:.3f} | {f:.3f} ± {fs:.3f} | {s:.0f} | {per} |' for n, b, bs, f, fs, s, per in table]
    text = '\n'.join(lines)
    print(text)
    if a.results:
        load = os.getloadavg()
        head = (f"\n### Recipes — {a.arch}, {a.size} px, synthetic n={a.n}, noise {a.noise}, majority {a.majority}, {a.seeds} seed(s)\n"
                f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores, shared (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end)\n"
                f"- command: `python benchmarks/recipes.py {shlex.join(sys.argv[1:])}`; scored on the test split, no TTA\n\n")
        with open(ROOT/'benchmarks'/'RESULTS.md', 'a') as f: f.write(head + text + '\n')

if __name__ == '__main__': main()
