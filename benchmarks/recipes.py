#!/usr/bin/env python
"""`train.recipe: quick` vs `strong`, and each ingredient of `strong` alone, on the noisy + imbalanced synthetic set.

Every row is one `medtrain.train.train` run on the same data (generated once: `data.synthetic.noise` flips a fraction of the
labels, `majority` sets the largest class's share), the same seed and the no-flags defaults otherwise, scored on the held-out
*test* split (labels as generated, noise included) by `evaluate` without TTA. Prints a markdown table of balanced accuracy and
macro-F1 (mean over `--seeds` training seeds) and, with `--results`, appends it to benchmarks/RESULTS.md.

  python benchmarks/recipes.py                          # 1400 images, 32 px, medcnn_small, 2 seeds
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

ROWS = {   # name: overrides on top of the data/model settings
    'quick': ['train.recipe=quick'],
    'quick + 2× epochs': ['train.recipe=quick', 'train.epochs=10'],
    'quick + 2× epochs + MixUp 0.2': ['train.recipe=quick', 'train.epochs=10', 'augment.mixup=0.2'],
    'quick + 2× epochs + EMA 0.99': ['train.recipe=quick', 'train.epochs=10', 'train.ema=0.99'],
    'quick + 2× epochs + label smoothing 0.1': ['train.recipe=quick', 'train.epochs=10', 'train.label_smoothing=0.1'],
    'quick + 2× epochs + progressive 16→32': ['train.recipe=quick', 'train.epochs=10', 'augment.progressive={sizes: [16, 32], epochs: [3, 7]}'],
    'strong': ['train.recipe=strong'],
}

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=1400, help='synthetic images')
    ap.add_argument('--noise', type=float, default=0.2); ap.add_argument('--majority', type=float, default=0.67)
    ap.add_argument('--arch', default='medcnn_small'); ap.add_argument('--size', type=int, default=32)
    ap.add_argument('--seeds', type=int, default=2)
    ap.add_argument('--rows', nargs='*', default=None, help='row names to run (exact); default all')
    ap.add_argument('--work-dir', default=None); ap.add_argument('--results', action='store_true'); ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args(argv)
    work = Path(a.work_dir or tempfile.mkdtemp(prefix='recipes-'))
    base = [f'data.path={work}/data', f'data.synthetic.n_images={a.n}', f'data.synthetic.image_size={a.size}', f'data.size={a.size}',
            f'data.synthetic.noise={a.noise}', f'data.synthetic.majority={a.majority}', f'model.arch={a.arch}', 'train.device=cpu']
    rows = {k: v for k, v in ROWS.items() if a.rows is None or k in a.rows}
    if a.size != 32: rows.pop('quick + 2× epochs + progressive 16→32', None)
    table = []
    for name, extra in rows.items():
        scores, secs = [], []
        for s in range(a.seeds):
            cfg = load_config(overrides=base + extra + [f'train.seed={42 + s}'], environ={})
            t = time.time()
            res = train(cfg, work/f"{name.replace(' ', '_')}-{s}", progress=False)
            secs.append(time.time() - t)
            m = evaluate(res.run_dir/'model', res.run_dir/'test.csv', res.run_dir/'test', progress=False, tta=False, cfg=EvalConfig(n_boot=10))
            scores.append((m['balanced_accuracy'], m['macro_f1']))
            if not a.quiet: print(f"{name} seed {42 + s}: balanced accuracy {scores[-1][0]:.3f}, macro-F1 {scores[-1][1]:.3f}, {secs[-1]:.0f} s", flush=True)
        table.append((name, statistics.mean(b for b, _ in scores), statistics.mean(f for _, f in scores), statistics.mean(secs),
                      ' / '.join(f'{b:.3f}' for b, _ in scores)))
    lines = ['| recipe | balanced accuracy | macro-F1 | train s | balanced accuracy per seed |', '|---|---:|---:|---:|---|']
    lines += [f'| {n} | {b:.3f} | {f:.3f} | {s:.0f} | {per} |' for n, b, f, s, per in table]
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
