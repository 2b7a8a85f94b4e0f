"""Issue Q, data side (found by attacking the code): devices, FIFOs and huge files in a dataset; file content in reports;
unknown URL schemes; rows that contradict each other; a run dir that is someone's folder; a user's file in a synthetic
dataset; a damaged checkpoint. Each test fails on the code before the fix."""
import json, os, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from conftest import ROOT, medtrain_inproc as cli_inproc, load_tiny, tiny_config, as_sets

AS_LIMIT = 5 << 30   # bytes of address space: importing torch and medtrain needs about 4 GiB here; reading /dev/zero to the end needs all

def _limited(code: str, timeout: int = 180) -> dict:
    """Run python `code` in a subprocess whose address space is capped at `AS_LIMIT`, so a regression that reads a device
    to the end fails this test (MemoryError) and never the machine; a FIFO opened for a blocking read times out instead.
    The code prints one JSON line last: returned."""
    pre = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({AS_LIMIT}, {AS_LIMIT}))\n"
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'MPLBACKEND': 'Agg'}
    r = subprocess.run([sys.executable, '-c', pre + textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

def _png(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)

@pytest.fixture
def hostile(tmp_path):
    "12 good PNGs in two class folders plus `nv/x.png` → /dev/zero and a FIFO `mel/y.png`; a CSV listing all of them and /dev/zero itself."
    root = tmp_path/'folder'
    for i in range(12): _png(root/('nv' if i % 2 else 'mel')/f'{i}.png', i)
    (root/'nv'/'x.png').symlink_to('/dev/zero')
    os.mkfifo(root/'mel'/'y.png')
    rows = [(str(p), p.parent.name) for p in sorted(root.glob('*/*.png'))] + [('/dev/zero', 'nv')]
    pd.DataFrame(rows, columns=['path', 'label']).to_csv(tmp_path/'m.csv', index=False)
    return tmp_path

def test_devices_fifos_and_symlinks_to_them_are_bad_files(hostile):
    "`medtrain data scan` and `prepare_data` (the train path) list them as 'not a regular file' and go on; data.bad_files=fail stops in one sentence."
    out = _limited(f"""
        import json, contextlib, io, os
        import pandas as pd
        from medtrain.cli import main
        from medtrain.config import DataConfig, DataError
        from medtrain.prepare import prepare_data
        d, res = {str(hostile)!r}, {{}}
        for name, src in (('csv', d + '/m.csv'), ('folder', d + '/folder')):
            with contextlib.redirect_stdout(io.StringIO()): code = main(['data', 'scan', src, '--out', f'{{d}}/scan-{{name}}.csv', '--quiet'])
            rep = pd.read_csv(f'{{d}}/scan-{{name}}.csv')
            res['scan-' + name] = [code, dict(zip(rep.path.str.rsplit('/', n=1).str[-1], rep.problem.astype(object).fillna('ok')))]
            cfg = DataConfig(source=name, path=src, cache_dir=d + '/cache', valid_pct=0.25, test_pct=0.25)
            os.makedirs(f'{{d}}/run-{{name}}')
            split = prepare_data(cfg, f'{{d}}/run-{{name}}', progress=False)
            bad = pd.read_csv(f'{{d}}/run-{{name}}/bad_files.csv')
            res['prepare-' + name] = [len(split.table), dict(zip(bad.path.str.rsplit('/', n=1).str[-1], bad.problem))]
            try: prepare_data(cfg.model_copy(update=dict(bad_files='fail')), progress=False); res['fail-' + name] = None
            except DataError as e: res['fail-' + name] = str(e)
        print(json.dumps(res))
    """)
    # the folder source records resolved paths: the link x.png is listed as the device it leads to
    bad = {'zero': 'not a regular file', 'y.png': 'not a regular file'}
    for name, extra in (('folder', {}), ('csv', {'x.png': 'not a regular file'})):
        code, problems = out['scan-' + name]
        assert code == 0 and {k: v for k, v in problems.items() if v != 'ok'} == {**bad, **extra}, out
        assert sum(v == 'ok' for v in problems.values()) == 12, out
        n, listed = out['prepare-' + name]
        assert n == 12 and listed == {**bad, **extra}, out
        msg = out['fail-' + name]
        assert msg and 'not a regular file' in msg and '\n' not in msg, out

def test_read_bytes_caps_size_before_reading(tmp_path):
    "A regular file over the cap is refused from its `stat` (a sparse 'terabyte' is never read); the cap is `data.max_file_bytes`."
    from medtrain.config import DataConfig, MAX_FILE_BYTES
    from medtrain.images import read_bytes, BadFileError
    from medtrain.scan import check_file
    big = tmp_path/'big.png'
    with open(big, 'wb') as f: f.truncate(1 << 40)   # sparse: no disk used
    with pytest.raises(BadFileError, match='too large') as e: read_bytes(big, max_file_bytes=1 << 20)
    assert e.value.problem == 'too large'
    assert check_file(big, max_file_bytes=1 << 20)['problem'] == 'too large'
    assert DataConfig().max_file_bytes == MAX_FILE_BYTES == 1 << 30

def test_url_reads_stop_at_the_cap(tmp_path):
    "An fsspec URL whose reported size is over the cap is refused; one whose size is unknown is read to cap+1 bytes at most."
    import fsspec
    from medtrain.images import read_bytes, BadFileError
    fs = fsspec.filesystem('memory')
    fs.pipe('/q/big.png', b'\x89PNG' + bytes(5000))
    with pytest.raises(BadFileError, match='too large'): read_bytes('memory://q/big.png', max_file_bytes=1000)
    assert len(read_bytes('memory://q/big.png', max_file_bytes=10_000)) == 5004

def test_scan_reports_never_copy_file_content(tmp_path):
    "A secret-looking text file listed as an image: the report names the problem, not its first bytes (was `starts with b'root:*:1'`)."
    from medtrain.scan import scan_table
    secret = tmp_path/'shadow.png'; secret.write_text('root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n')
    fake = tmp_path/'fake.png'; fake.write_bytes(b'\x89PNG\r\n\x1a\nSECRETSECRETSECRET')
    rep = scan_table(pd.DataFrame(dict(path=[str(secret), str(fake)], label=['a', 'a'])), progress=False)
    assert list(rep.problem) == ['not an image', 'corrupt'], rep
    for d in rep.detail: assert 'root' not in d and 'SECRET' not in d and "b'" not in d, d

@pytest.mark.parametrize('url', ['gopher://x/a.png', 'foo://bar/b.png'])
def test_unknown_url_scheme_is_a_bad_file(tmp_path, url):
    "A manifest row with a URL scheme medtrain does not read is a bad file 'unsupported URL scheme'; the rest trains (it crashed before)."
    from medtrain.config import DataConfig
    from medtrain.prepare import prepare_data
    from medtrain.scan import check_file
    assert check_file(url)['problem'] == 'unsupported URL scheme'
    for i in range(8): _png(tmp_path/'img'/f'{i}.png', i)
    rows = [(f'img/{i}.png', 'ab'[i % 2]) for i in range(8)] + [(url, 'a')]
    pd.DataFrame(rows, columns=['path', 'label']).to_csv(tmp_path/'m.csv', index=False)
    (tmp_path/'run').mkdir()
    split = prepare_data(DataConfig(source='csv', path=tmp_path/'m.csv', cache_dir=tmp_path/'cache'), tmp_path/'run', progress=False)
    assert len(split.table) == 8 and split.bad.problem.tolist() == ['unsupported URL scheme'], split.bad

def test_conflicting_duplicate_rows_are_dropped_and_listed(tmp_path, capsys):
    "The same file listed twice with different labels: both rows dropped (its label is unknown), listed in duplicates.csv, counted in a warning."
    from medtrain.config import DataConfig
    from medtrain.prepare import prepare_data
    for i in range(10): _png(tmp_path/'img'/f'{i}.png', i)
    rows = [(f'img/{i}.png', 'ab'[i % 2]) for i in range(10)] + [('img/0.png', 'b'), (str(tmp_path/'img'/'3.png'), 'a')]
    pd.DataFrame(rows, columns=['path', 'label']).to_csv(tmp_path/'m.csv', index=False)
    (tmp_path/'run').mkdir()
    split = prepare_data(DataConfig(source='csv', path=tmp_path/'m.csv', cache_dir=tmp_path/'cache'), tmp_path/'run', progress=False)
    names = split.table.path.map(lambda p: Path(p).name)
    assert len(split.table) == 8 and not {'0.png', '3.png'} & set(names), split.table
    dup = pd.read_csv(tmp_path/'run'/'duplicates.csv')
    assert sorted(dup.path.map(lambda p: Path(p).name)) == ['0.png', '0.png', '3.png', '3.png'], dup
    assert set(dup.reason) == {'conflicting labels'}, dup
    err = capsys.readouterr().err
    assert '4 rows' in err and '2 file(s)' in err and 'duplicates.csv' in err, err

def test_run_dir_holding_other_files_is_refused(tmp_path):
    "`--run-dir D`, D a non-empty folder that is not a medtrain run: refused in one sentence, D untouched; every engine alike."
    from medtrain.config import ConfigError, load_config
    from medtrain.train import prepare_run_dir, new_run_dir
    d = tmp_path/'mine'; d.mkdir(); (d/'notes.txt').write_text('my notes')
    with pytest.raises(ConfigError, match='not a medtrain run'): prepare_run_dir(d)
    with pytest.raises(ConfigError, match='not a medtrain run'): prepare_run_dir(d, overwrite=True)
    r = cli_inproc('train', *as_sets(tiny_config(tmp_path)), '--run-dir', d, '--quiet')
    assert r.returncode == 2 and 'not a medtrain run' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    from test_text import _config
    (tmp_path/'t').mkdir()
    r = cli_inproc('train', '--config', _config(tmp_path/'t'), '--run-dir', d, '--quiet')
    assert r.returncode == 2 and 'not a medtrain run' in r.stderr, r.stderr
    assert sorted(p.name for p in d.iterdir()) == ['notes.txt']
    prepare_run_dir(tmp_path/'new'); prepare_run_dir(new_run_dir(load_tiny(tmp_path), tmp_path/'empty').path)   # a new or empty one is fine

def test_synthetic_regeneration_deletes_only_what_it_recorded(tmp_path):
    "A user's file named like a generated image, or a generated image the user replaced, survives regeneration (the run stops instead)."
    from medtrain.config import DataError, SyntheticConfig
    from medtrain.data import make_synthetic
    make_synthetic(tmp_path/'s', SyntheticConfig(n_images=10, n_classes=2, image_size=16), seed=0, progress=False)
    mine, edited = tmp_path/'s'/'images'/'999999.png', tmp_path/'s'/'images'/'000003.png'
    _png(mine, 1); _png(edited, 2)
    before = mine.read_bytes(), edited.read_bytes()
    with pytest.raises(DataError, match='999999.png'): make_synthetic(tmp_path/'s', SyntheticConfig(n_images=10, n_classes=2, image_size=16), seed=1, progress=False)
    assert (mine.read_bytes(), edited.read_bytes()) == before
    mine.unlink()
    with pytest.raises(DataError, match='000003.png'): make_synthetic(tmp_path/'s', SyntheticConfig(n_images=10, n_classes=2, image_size=16), seed=1, progress=False)
    assert edited.read_bytes() == before[1]

def test_truncated_checkpoint_on_resume_names_best_weights(tmp_path):
    "`--resume` with a cut `last.pt`: one sentence saying it is damaged, naming `best.pth` (the best weights) when it exists."
    import torch
    from medtrain.config import MedtrainError, save_config
    from medtrain.resume import load_checkpoint
    run = tmp_path/'run'; (run/'checkpoints').mkdir(parents=True)
    save_config(load_tiny(tmp_path), run/'config.yaml')
    (run/'run.json').write_text(json.dumps(dict(status='running')))
    torch.save(dict(epoch=1, model={'w': torch.zeros(1000)}), run/'checkpoints'/'last.pt')
    data = (run/'checkpoints'/'last.pt').read_bytes(); (run/'checkpoints'/'last.pt').write_bytes(data[:len(data) // 2])
    with pytest.raises(MedtrainError, match='damaged or truncated') as e: load_checkpoint(run/'checkpoints'/'last.pt')
    assert 'best.pth' not in str(e.value)
    torch.save({'w': torch.zeros(3)}, run/'checkpoints'/'best.pth')
    r = cli_inproc('train', '--resume', run, '--quiet')
    assert r.returncode != 0 and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'damaged or truncated' in r.stderr and str(run/'checkpoints'/'best.pth') in r.stderr, r.stderr

def test_predict_input_csv_that_is_a_fifo_or_device_is_refused(tmp_path):
    "`medtrain predict --input x.csv` where x.csv is a FIFO or a link to /dev/zero: one sentence, exit 3, not a read that never ends."
    import subprocess, sys
    os.symlink('/dev/zero', tmp_path/'zero.csv'); os.mkfifo(tmp_path/'fifo.csv')
    code = ("import sys\nfrom medtrain.bundle import list_inputs\nfrom medtrain.config import DataError\n"
            "try: list_inputs(sys.argv[1])\nexcept DataError as e: print(e); sys.exit(3)\n")
    for name, what in (('zero.csv', 'character device'), ('fifo.csv', 'FIFO')):
        r = subprocess.run([sys.executable, '-c', code, str(tmp_path/name)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 3 and 'not a regular file' in r.stdout and what in r.stdout, (r.returncode, r.stdout, r.stderr[-500:])
