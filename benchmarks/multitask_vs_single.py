#!/usr/bin/env python
"""Does sharing a backbone help? One multi-task model against one single-task model per task, same budget.

Data: the synthetic lesions (`make_synthetic`) with three targets that share structure: the diagnosis (the
generator's label), a malignant flag derived from it (mel, bcc, akiec), and the lesion's size, measured from each
image (the share of dark pixels, x100), known for only a third of the images (like a thickness that is rarely
measured). Every model: `medcnn_small`, the same split, epochs, learning rate and seeds; each task is scored on the
same validation images. Prints a markdown table; `--record` appends it to benchmarks/RESULTS.md.

    python benchmarks/multitask_vs_single.py [--n-images 600] [--epochs 6] [--seeds 0 1] [--record]
"""
import argparse, json, os, platform, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np, pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from medtrain.config import load_config, SyntheticConfig
from medtrain.data import make_synthetic
from medtrain.prepare import prepare_data
from medtrain.train import train

TASKS = {'diagnosis': '{name: diagnosis, column: dx, kind: multiclass}',
         'malignant': '{name: malignant, column: malignant, kind: binary}',
         'size': '{name: size, column: size, kind: regression}'}
SHOWN = [('diagnosis', 'macro_f1'), ('diagnosis', 'roc_auc'), ('malignant', 'roc_auc'), ('size', 'mae'), ('size', 'r2')]

def lesion_csv(work: Path, n_images: int, image_size: int) -> Path:
    syn = make_synthetic(work/'syn', SyntheticConfig(n_images=n_images, image_size=image_size, majority=0.4, n_classes=5), seed=0, progress=False)
    size = np.array([(np.asarray(Image.open(p).convert('L')) < 110).mean() * 100 for p in syn.path])
    rows = pd.DataFrame(dict(path=syn.path, patient_id=syn.patient_id, dx=syn.label,
                             malignant=syn.label.isin(['mel', 'bcc', 'akiec']).astype(int), size=np.round(size, 2).astype(object)))
    rows.loc[np.arange(len(rows)) % 3 != 0, 'size'] = ''
    rows.to_csv(work/'lesions.csv', index=False)
    return work/'lesions.csv'

def config(csv, work, tasks, args, seed):
    return load_config(overrides=['data.source=csv', f'data.path={csv}', f'data.size={args.image_size}', 'model.arch=medcnn_small',
                                  f'train.epochs={args.epochs}', 'train.bs=32', 'train.device=cpu', f'train.lr={args.lr}', f'train.seed={seed}',
                                  f'tracking.runs_dir={work}/runs', 'train.progress=false',
                                  f"data.tasks=[{', '.join(TASKS[t] for t in tasks)}]"], environ={})

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n-images', type=int, default=600); ap.add_argument('--image-size', type=int, default=32)
    ap.add_argument('--epochs', type=int, default=6); ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1]); ap.add_argument('--record', action='store_true')
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args()
    import torch; torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix='mtl-bench-'))
    csv = lesion_csv(work, args.n_images, args.image_size)
    split = prepare_data(config(csv, work, list(TASKS), args, 0).data, progress=False)   # one split for every model
    res, secs = {}, {}
    for seed in args.seeds:
        for setup, tasks in [('multi-task (3 heads)', list(TASKS))] + [(f'single-task: {t}', [t]) for t in TASKS]:
            t0 = time.time()
            r = train(config(csv, work, tasks, args, seed), split=split, progress=False)
            secs[setup] = secs.get(setup, 0) + time.time() - t0
            for t in tasks:
                for task, metric in SHOWN:
                    if task == t: res.setdefault((setup if setup.startswith('multi') else 'one model per task', task, metric), []).append(r.metrics['tasks'][t][metric])
            print(f"seed {seed} {setup}: {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    lines = ['| setup | ' + ' | '.join(f'{t} {m}' for t, m in SHOWN) + ' | train s |', '|---' * (len(SHOWN) + 2) + '|']
    single_s = sum(v for k, v in secs.items() if k.startswith('single'))
    for setup, s in (('multi-task (3 heads)', secs['multi-task (3 heads)']), ('one model per task', single_s)):
        cells = [f"{np.mean(res[(setup, t, m)]):.3f} ± {np.std(res[(setup, t, m)]):.3f}" for t, m in SHOWN]
        lines.append(f'| {setup} | ' + ' | '.join(cells) + f' | {s / len(args.seeds):.0f} |')
    table = '\n'.join(lines)
    n = split.table.split.value_counts()
    head = (f"### Multi-task vs one model per task — synthetic lesions, medcnn_small @ {args.image_size} px, CPU\n"
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f} (shared with other engineers' jobs: times are noisy, metrics are not affected)\n"
            f"- command: `python benchmarks/{Path(__file__).name} --n-images {args.n_images} --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}`\n"
            f"- {len(split.table)} images (train/valid/test {n.get('train', 0)}/{n.get('valid', 0)}/{n.get('test', 0)}), size known for 1/3; "
            f"{args.epochs} epochs, lr {args.lr}, mean ± sd over seeds {args.seeds}; validation metrics (size MAE in % of the image)\n")
    print(head + '\n' + table)
    if args.record:
        with open(ROOT/'benchmarks'/'RESULTS.md', 'a') as f: f.write('\n' + head + '\n' + table + '\n')

if __name__ == '__main__': main()
