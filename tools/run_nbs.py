#!/usr/bin/env python
"""Re-run notebooks in place so they keep their small teaching outputs (plots, tables), then `nbdev_clean` them.

The notebooks are committed clean (`nbdev_clean`, settings.ini `clear_all = False`: execution counts and metadata go,
outputs stay), and what they show must come from re-running them. This executes each notebook top to bottom in a
fresh kernel of this environment (the `python3` kernel = this interpreter, with this checkout on PYTHONPATH), from the
notebook's own folder, honouring nbdev's directives like `nbdev_test` does: `#| eval: false` cells and cells with a
test flag that is not asked for (`--flags`) are skipped. Then it cleans them and reports each one's time and the size
of its images, failing if an image is too big to commit.

    python tools/run_nbs.py                      # numbered notebooks + tutorials, slow cells included
    python tools/run_nbs.py nbs/07_evaluate.ipynb --flags ""
"""
import argparse, base64, configparser, os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_TAG = 'medtrain-skip-execution'
MAX_IMAGE_BYTES = 150_000   # a plot for the docs, not a poster: keep figures small (figsize, dpi)

def default_notebooks():
    nbs = ROOT/'nbs'
    return sorted(p for p in nbs.glob('*.ipynb') if re.match(r'^\d+[a-z]{0,2}_', p.name)) + sorted((nbs/'tutorials').glob('*.ipynb'))

def directives(src: str) -> dict:
    "nbdev's `#| key: value` / `#| flag` lines at the top of a cell."
    d = {}
    for line in src.splitlines():
        m = re.match(r'^#\|\s*([\w-]+):?\s*(.*)$', line.strip())
        if not m: break
        d[m.group(1)] = m.group(2).strip()
    return d

def is_library_warning(output) -> bool:
    "A stderr stream made only of warnings raised inside installed packages (e.g. a deprecation at import)."
    if output.get('output_type') != 'stream' or output.get('name') != 'stderr': return False
    lines = [l for l in ''.join(output.get('text', '')).splitlines() if l.strip()]
    heads = [l for l in lines if not l.startswith(' ')]
    return bool(heads) and all(re.search(r'(site|dist)-packages/.*:\d+: \w*Warning', l) for l in heads)

def should_skip(src: str, flags: set, tst_flags: set) -> bool:
    d = directives(src)
    if d.get('eval', '').lower() == 'false': return True
    return any(k in tst_flags and k not in flags for k in d)

def run_notebook(path: Path, flags=frozenset({'slow'}), timeout_s=600) -> dict:
    import nbformat
    from nbclient import NotebookClient
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    tst_flags = set(cfg['DEFAULT'].get('tst_flags', '').split())
    import warnings
    with warnings.catch_warnings():   # notebooks written without cell ids: nbformat adds them, nbdev_clean then sets its own
        warnings.simplefilter('ignore')
        nb = nbformat.read(path, as_version=4)
        nb = nbformat.validator.normalize(nb)[1]
    skipped = 0
    for c in nb.cells:
        if c.cell_type == 'code' and should_skip(c.source, set(flags), tst_flags):
            c.metadata.setdefault('tags', []).append(SKIP_TAG); c.outputs = []; skipped += 1
    os.environ['PYTHONPATH'] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])])
    os.environ.setdefault('JUPYTER_PREFER_ENV_PATH', '1')  # python3 = this environment's kernel, not a user-level one
    t0 = time.time()
    client = NotebookClient(nb, kernel_name='python3', timeout=timeout_s, skip_cells_with_tag=SKIP_TAG,
                            resources={'metadata': {'path': str(path.parent.resolve())}},
                            extra_arguments=["--InlineBackend.rc={'figure.dpi': 72}"])
    client.execute()
    for c in nb.cells:
        tags = c.metadata.get('tags', [])
        if SKIP_TAG in tags:
            tags.remove(SKIP_TAG)
            if not tags: del c.metadata['tags']
    noise = 0
    for c in nb.cells:   # third-party import-time warnings (paths into site-packages): machine-specific noise, not teaching
        keep = [o for o in c.get('outputs', []) if not is_library_warning(o)]
        noise += len(c.get('outputs', [])) - len(keep)
        if 'outputs' in c: c.outputs = keep
    images = [len(base64.b64decode(o['data'][k])) for c in nb.cells for o in c.get('outputs', [])
              for k in ('image/png', 'image/jpeg') if k in o.get('data', {})]
    nbformat.write(nb, path)
    subprocess.run([str(Path(sys.executable).parent/'nbdev_clean'), '--fname', str(path)], cwd=ROOT, check=True)
    return dict(notebook=str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), seconds=round(time.time() - t0, 1),
                skipped_cells=skipped, library_warnings_dropped=noise, images=len(images), largest_image_bytes=max(images, default=0))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='*', type=Path, help="default: the numbered notebooks and nbs/tutorials/*")
    ap.add_argument('--flags', default='slow', help="test flags whose cells run (space separated; default: slow)")
    ap.add_argument('--timeout-s', type=int, default=600, help="per cell")
    a = ap.parse_args(argv)
    rows, too_big = [], []
    for p in (a.notebooks or default_notebooks()):
        print(f'>> {p}', flush=True)
        r = run_notebook(Path(p).resolve(), frozenset(a.flags.split()), a.timeout_s)
        print(f"   {r['seconds']} s, {r['skipped_cells']} cells skipped, {r['library_warnings_dropped']} library warnings dropped, {r['images']} images (largest {r['largest_image_bytes']:,} bytes)")
        rows.append(r)
        if r['largest_image_bytes'] > MAX_IMAGE_BYTES: too_big.append(r['notebook'])
    print(f">> {len(rows)} notebooks in {sum(r['seconds'] for r in rows):.0f} s")
    if too_big: sys.exit(f"images over {MAX_IMAGE_BYTES:,} bytes in {', '.join(too_big)}: make those figures smaller")

if __name__ == '__main__': main()
