"""Transfer learning on a 100-image task: timm weights pretrained locally vs scratch, and timm's classifier vs fastai's head.

Task A (the "ImageNet" here): a large synthetic set (7 lesion classes, `--n-pretrain` images) trains a resnet18 whose
`model/model.safetensors` has timm's key names, i.e. a file like any timm/HF checkpoint. Task B: 4 classes, 100
labelled images (other seed, other patients). On B, each head (`timm`, `fastai`) trains once from scratch and once
from A's weights file (`model.pretrained=…/model.safetensors`, 2 frozen + 6 epochs, same 8-epoch budget), and is
evaluated on 400 new images of B, once per `--seeds` (train.seed): mean ± sd over the seeds. Prints a table and
appends it to RESULTS.md. `--weights FILE` reuses task A's weights from an earlier run instead of pretraining again.

    python benchmarks/transfer.py                # ~30–60 min on the 2-core CPU (4 seeds)
    python benchmarks/transfer.py --weights /tmp/bench/A_run/model/model.safetensors --seeds 0 1 --no-record
    python benchmarks/transfer.py --smoke --no-record
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def cli(*args):
    r = subprocess.run([sys.executable, '-m', 'medtrain', *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, 'PYTHONPATH': str(ROOT), 'MPLBACKEND': 'Agg'})
    if r.returncode: sys.exit(f"medtrain {' '.join(map(str, args))} failed:\n{r.stderr[-3000:]}")
    return r

def sets(opts): return [a for o in opts for a in ('--set', o)]

def main(a):
    w = Path(a.work_dir or tempfile.mkdtemp(prefix='medtrain-transfer-bench-'))
    common = ['data.size=32', 'data.synthetic.image_size=32', 'train.device=cpu', 'train.bs=32', 'model.arch=resnet18']
    n_a, ep_a = (200, 1) if a.smoke else (a.n_pretrain, a.pretrain_epochs)
    t = time.time()
    if a.weights: weights, t_a = Path(a.weights), 0.
    else:
        cli('train', *sets(common + [f'data.path={w}/A', f'data.synthetic.n_images={n_a}', 'data.seed=1', f'train.epochs={ep_a}']),
            '--run-dir', w/'A_run', '--quiet', '--overwrite')
        weights, t_a = w/'A_run'/'model'/'model.safetensors', time.time() - t
    task_b = common + [f'data.path={w}/B', 'data.synthetic.n_images=100', 'data.synthetic.n_classes=4', 'data.synthetic.majority=0.3',
                       'data.seed=2', 'data.test_pct=0.1', 'train.lr=0.002']
    cli('data', 'synth', '--out', w/'B_test', '--n-images', 40 if a.smoke else 400, '--n-classes', 4, '--majority', 0.3,
        '--image-size', 32, '--seed', 3, '--quiet')
    rows = []
    seeds = [0] if a.smoke else a.seeds
    for head in ('timm', 'fastai'):
        for start in ('scratch', 'pretrained'):
            f1s, accs, secs = [], [], []
            for seed in seeds:
                name = f'{head}_{start}_{seed}'
                opts = task_b + [f'model.head={head}', f'train.seed={seed}'] + (
                    [f'model.pretrained={weights}', 'train.freeze_epochs=2', 'train.epochs=6'] if start == 'pretrained' else ['train.epochs=8'])
                if a.smoke: opts += ['train.epochs=1'] + (['train.freeze_epochs=1'] if start == 'pretrained' else [])
                t = time.time()
                cli('train', *sets(opts), '--run-dir', w/name, '--quiet', '--overwrite')
                secs.append(time.time() - t)
                cli('evaluate', '--model-path', w/name/'model', '--test-data', w/'B_test'/'manifest.csv', '--out', w/f'{name}_eval', '--quiet')
                m = json.loads((w/f'{name}_eval'/'metrics.json').read_text())
                f1s.append(m['macro_f1']); accs.append(m['accuracy'])
            rows.append((head, start, f1s, accs, statistics.mean(secs)))
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.
    table = [f'| head | start | test macro-F1 mean ± sd ({len(seeds)} seeds) | per seed ({", ".join(map(str, seeds))}) | test accuracy mean | train s (mean) |',
             '|---|---|---|---|---|---|']
    table += [f'| {h} | {s} | {statistics.mean(f):.3f} ± {sd(f):.3f} | {" ".join(f"{x:.3f}" for x in f)} | {statistics.mean(acc):.3f} | {secs:.0f} |'
              for h, s, f, acc, secs in rows]
    load = os.getloadavg()
    md = (f"\n### Transfer learning — resnet18 @ 32 px, 100-image task B (4 classes), 400 test images\n"
          f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"shared with 4 other engineers' jobs (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end: times are noisy, metrics are not)\n"
          f"- command: `python benchmarks/transfer.py{' --smoke' if a.smoke else ''}`; task A pretraining: " + (f"reused {weights}" if a.weights else f"{n_a} images, {ep_a} epochs, {t_a:.0f} s") + "\n\n"
          + '\n'.join(table) + '\n')
    print(md)
    if not a.no_record: open(a.results, 'a').write(md)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-pretrain', type=int, default=1500); p.add_argument('--pretrain-epochs', type=int, default=5)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 42]); p.add_argument('--weights', help="task A's model.safetensors from an earlier run")
    p.add_argument('--work-dir'); p.add_argument('--smoke', action='store_true'); p.add_argument('--no-record', action='store_true')
    p.add_argument('--results', default=str(ROOT/'benchmarks'/'RESULTS.md'))
    main(p.parse_args())
