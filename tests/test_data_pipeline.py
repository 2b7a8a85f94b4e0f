"Issue B through the real CLI: bad files skipped or fatal, DICOM and shard sources trained on, manifests verified, suspects found."
import io, json, shutil
import numpy as np, pandas as pd, pytest
from PIL import Image
from medtrain.config import SyntheticConfig
from medtrain.data import make_synthetic, write_dicom
from conftest import medtrain_inproc as cli_inproc, tiny_config, as_sets

def _sets(*kv): return as_sets(tiny_config(None, 'train.epochs=1', 'data.valid_pct=0.2', 'data.test_pct=0.2', *kv))

@pytest.fixture
def folder_with_bad_files(tmp_path):
    "120 good synthetic images in class folders, plus one bad file of four kinds."
    df = make_synthetic(tmp_path/'syn', SyntheticConfig(n_images=120, image_size=32, majority=0.4, n_classes=3), seed=0, progress=False)
    root = tmp_path/'scans'
    for i, (p, lbl) in enumerate(zip(df.path, df.label)):
        (root/lbl).mkdir(parents=True, exist_ok=True); shutil.copy(p, root/lbl/f'{i}.png')
    cls = sorted(df.label.unique())[0]
    (root/cls/'empty.png').write_bytes(b'')
    (root/cls/'cut.png').write_bytes((root/cls/next(f.name for f in (root/cls).iterdir() if f.stat().st_size > 500)).read_bytes()[:300])
    (root/cls/'report.png').write_bytes(b'<html>404 not found</html>')
    Image.new('RGB', (300, 300)).save(root/cls/'huge.png')
    return root

def test_scan_cli_names_every_bad_file(cli, tmp_path, folder_with_bad_files):
    r = cli('data', 'scan', folder_with_bad_files, '--out', tmp_path/'rep.csv', '--max-pixels', 200 * 200, '--quiet', check=True)
    assert 'scanned 124 files: 120 good, 4 bad' in r.stdout, r.stdout
    rep = pd.read_csv(tmp_path/'rep.csv')
    bad = dict(zip(rep.path.map(lambda p: p.rsplit('/', 1)[-1]), rep.problem))
    assert {k: bad[k] for k in ('empty.png', 'cut.png', 'report.png', 'huge.png')} == \
        {'empty.png': 'zero-byte', 'cut.png': 'truncated', 'report.png': 'not an image', 'huge.png': 'too large'}
    assert cli('data', 'scan', folder_with_bad_files, '--out', tmp_path/'r2.csv', '--max-pixels', 200 * 200, '--strict', '--quiet').returncode == 3

def test_training_skips_bad_files_or_stops(cli, tmp_path, folder_with_bad_files):
    common = _sets('data.source=folder', f'data.path={folder_with_bad_files}', 'data.max_pixels=40000')
    r = cli('train', *common, '--run-dir', tmp_path/'run', '--quiet')
    assert r.returncode == 0, r.stderr
    bad = pd.read_csv(tmp_path/'run'/'bad_files.csv')
    assert sorted(bad.problem) == ['not an image', 'too large', 'truncated', 'zero-byte']
    assert json.loads((tmp_path/'run'/'run.json').read_text())['n_images'] == 120
    r = cli('train', *common, '--set', 'data.bad_files=fail', '--run-dir', tmp_path/'run2', '--quiet')
    assert r.returncode == 3 and '4 bad image(s)' in r.stderr and 'data.bad_files=skip' in r.stderr, r.stderr

def _damaged_jpeg(src_png, dst):
    "The photo as a JPEG whose Huffman tables (the 300 bytes before the scan) were zeroed: libjpeg decodes it into wrong pixels and only warns."
    buf = io.BytesIO(); Image.open(src_png).convert('RGB').resize((64, 64)).save(buf, 'JPEG', quality=90)
    data = buf.getvalue(); sos = data.index(b'\xff\xda')
    dst.write_bytes(data[:sos - 300] + bytes(300) + data[sos:])
    Image.open(dst).load()                                              # Pillow opens it without complaint

def test_scan_reports_a_jpeg_with_damaged_tables(tmp_path, folder_with_bad_files):
    cls = sorted(d.name for d in folder_with_bad_files.iterdir())[1]
    _damaged_jpeg(next((folder_with_bad_files/cls).glob('*.png')), folder_with_bad_files/cls/'tables.jpg')
    r = cli_inproc('data', 'scan', folder_with_bad_files, '--out', tmp_path/'rep.csv', '--max-pixels', 200 * 200, '--quiet', check=True)
    assert 'scanned 125 files: 120 good, 5 bad' in r.stdout, r.stdout
    rep = pd.read_csv(tmp_path/'rep.csv').set_index('path')
    row = rep.loc[str((folder_with_bad_files/cls/'tables.jpg').resolve())]
    assert row.problem == 'corrupt' and 'extraneous bytes before marker 0xda' in row.detail, row.detail

def test_manifest_rows_without_label_or_path_are_bad_files(tmp_path):
    "A CSV row with an empty label (IndexError in assign_splits before) or an empty path is listed, skipped, or fatal."
    make_synthetic(tmp_path/'d', SyntheticConfig(n_images=60, image_size=24, n_classes=3, majority=0.4), seed=0, progress=False)
    m = pd.read_csv(tmp_path/'d'/'manifest.csv')
    m.loc[3, 'label'] = None; m.loc[7, 'path'] = None
    m.to_csv(tmp_path/'d'/'holes.csv', index=False)
    common = _sets('data.source=csv', f'data.path={tmp_path}/d/holes.csv', 'model.arch=medcnn_small')
    r = cli_inproc('train', *common, '--run-dir', tmp_path/'run', '--quiet')
    assert r.returncode == 0, r.stderr
    bad = pd.read_csv(tmp_path/'run'/'bad_files.csv')
    assert sorted(bad.problem) == ['no label', 'no path'] and 'row 4 ' in ' '.join(bad.detail), bad
    splits = pd.read_csv(tmp_path/'run'/'splits.csv')
    assert len(splits) == 58 and splits.label.notna().all() and 'nan' not in set(splits.label.astype(str))
    r = cli_inproc('train', *common, '--set', 'data.bad_files=fail', '--run-dir', tmp_path/'run2', '--quiet')
    assert r.returncode == 3 and '1 no label' in r.stderr and '1 no path' in r.stderr, r.stderr

def test_train_on_dicom_folder(cli, tmp_path):
    "Two classes of 16-bit CT-like DICOM slices that differ in tissue value; the model must separate them."
    rng = np.random.default_rng(0)
    for c, hu in (('fat', -100), ('liver', 60)):
        (tmp_path/'dcm'/c).mkdir(parents=True)
        for i in range(40):
            a = (rng.normal(0, 20, (32, 32)) + hu + 1024).clip(0, 4095).astype(np.uint16)
            write_dicom(tmp_path/'dcm'/c/f'{i}.dcm', a, intercept=-1024, window=(40, 400), patient_id=f'{c}{i}')
    r = cli('train', *_sets('data.source=folder', f'data.path={tmp_path}/dcm', 'train.epochs=3', 'model.arch=medcnn_small', 'train.lr=0.01'),
            '--run-dir', tmp_path/'run', '--quiet')
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path/'run'/'model'/'model.json').read_text())
    assert meta['n_in'] == 1                                          # grayscale detected from the DICOM header
    assert json.loads((tmp_path/'run'/'metrics.json').read_text())['accuracy'] >= 0.9

def test_shard_then_train_from_shards(cli, tmp_path):
    make_synthetic(tmp_path/'syn', SyntheticConfig(n_images=100, image_size=32, n_classes=3, majority=0.4), seed=0, progress=False)
    r = cli('data', 'shard', tmp_path/'syn'/'manifest.csv', tmp_path/'shards', '--shard-size', 40, '--quiet', check=True)
    assert '100 images → 3 shard(s)' in r.stdout
    r = cli('train', *_sets('data.source=shards', f'data.path={tmp_path}/shards'), '--run-dir', tmp_path/'run', '--quiet')
    assert r.returncode == 0, r.stderr
    sp = pd.read_csv(tmp_path/'run'/'splits.csv')
    assert sp.path.str.contains(r'\.tar#').all() and sp.groupby('patient_id').split.nunique().max() == 1

def test_manifest_and_verify(cli, tmp_path):
    make_synthetic(tmp_path/'d', SyntheticConfig(n_images=60, image_size=24), seed=0, progress=False)
    r = cli('data', 'manifest', tmp_path/'d'/'manifest.csv', '--out', tmp_path/'d'/'dataset.csv', '--folds', 3, '--quiet', check=True)
    assert 'dataset version' in r.stdout
    m = pd.read_csv(tmp_path/'d'/'dataset.csv')
    assert {'sha256', 'size', 'label', 'patient_id', 'split', 'fold'} <= set(m.columns)
    assert set(m[m.split != 'test'].fold) == {0, 1, 2} and m.groupby('patient_id').fold.nunique().max() == 1
    assert cli('data', 'verify', tmp_path/'d'/'dataset.csv', '--quiet').returncode == 0
    files = sorted((tmp_path/'d').rglob('*.png'))
    files[0].unlink(); files[1].write_bytes(files[1].read_bytes() + b'x'); shutil.copy(files[2], tmp_path/'d'/'extra.png')
    r = cli('data', 'verify', tmp_path/'d'/'dataset.csv', '--quiet')
    assert r.returncode == 1 and '3 difference(s): ' in r.stdout and all(k in r.stdout for k in ('1 removed', '1 changed', '1 added')), r.stdout

def test_planted_copies_across_given_splits_are_dropped(tmp_path):
    "train/valid/test folders (as PneumoniaMNIST's own split): copies of train images in valid/test leave the later split."
    df = make_synthetic(tmp_path/'syn', SyntheticConfig(n_images=90, image_size=24, n_classes=3, majority=0.4), seed=0, progress=False)
    root = tmp_path/'layout'
    where = ['train'] * 60 + ['valid'] * 15 + ['test'] * 15
    for i, (p, lbl, s) in enumerate(zip(df.path, df.label, where)):
        (root/s/lbl).mkdir(parents=True, exist_ok=True); shutil.copy(p, root/s/lbl/f'{i}.png')
    planted = {('valid', 0), ('valid', 1), ('test', 2), ('test', 70)}      # 3 copies of train images, 1 of a valid image
    for s, i in planted: shutil.copy(df.path[i], root/s/df.label[i]/f'copy-{i}.png')
    common = _sets('data.source=folder', f'data.path={root}', 'model.arch=medcnn_small')
    r = cli_inproc('train', *common, '--run-dir', tmp_path/'run', '--quiet')
    assert r.returncode == 0, r.stderr
    assert len([l for l in r.stderr.splitlines() if 'dropped 4 exact copies' in l and 'duplicates.csv' in l]) == 1, r.stderr
    dups = pd.read_csv(tmp_path/'run'/'duplicates.csv')
    assert {(s, int(p.rsplit('copy-', 1)[1][:-4])) for s, p in zip(dups.split, dups.path)} == planted
    assert sorted(dups.kept_split) == ['train', 'train', 'train', 'valid']
    splits = pd.read_csv(tmp_path/'run'/'splits.csv')
    assert not splits.path.str.contains('copy-').any() and len(splits) == 90
    assert json.loads((tmp_path/'run'/'run.json').read_text())['duplicates_dropped'] == 4
    r = cli_inproc('train', *common, '--set', 'data.duplicates=fail', '--run-dir', tmp_path/'run2', '--quiet')
    assert r.returncode == 3 and 'appear in more than one split (same SHA-256)' in r.stderr, r.stderr

def test_patient_in_two_given_splits_stays_an_error(tmp_path):
    make_synthetic(tmp_path/'d', SyntheticConfig(n_images=60, image_size=24), seed=0, progress=False)
    m = pd.read_csv(tmp_path/'d'/'manifest.csv')
    m['split'] = ['train'] * 40 + ['valid'] * 10 + ['test'] * 10
    m['patient_id'] = [f'x{i}' for i in range(len(m))]
    shutil.copy(tmp_path/'d'/m.path[0], tmp_path/'d'/'copy.png')      # the same image again, same patient, now in the test split
    m = pd.concat([m, m.iloc[[0]].assign(path='copy.png', split='test')])
    m.to_csv(tmp_path/'d'/'leaky.csv', index=False)
    r = cli_inproc('train', *_sets('data.source=csv', f'data.path={tmp_path}/d/leaky.csv'), '--run-dir', tmp_path/'run', '--quiet')
    assert r.returncode == 3 and 'split leak: patient(s) x0' in r.stderr, r.stderr

def test_suspects_cli_on_a_run(cli, tmp_path):
    "The validation-split path: the run's own model scores its validation images; the table and grid land in the run dir."
    sets = _sets(f'data.path={tmp_path}/data', 'data.synthetic.n_images=200', 'data.synthetic.image_size=32', 'data.synthetic.noise=0.3',
                 'data.synthetic.majority=0.4', 'data.synthetic.n_classes=3', 'data.valid_pct=0.4')
    cli('train', *sets, '--run-dir', tmp_path/'run', '--quiet', check=True)
    r = cli('data', 'suspects', tmp_path/'run', '--top', 8, '--quiet', check=True)
    sus = pd.read_csv(tmp_path/'run'/'suspects.csv')
    valid = pd.read_csv(tmp_path/'run'/'splits.csv').query("split == 'valid'")
    assert f"likely mislabeled of {len(valid)} validation images" in r.stdout, r.stdout
    assert set(sus.path) <= set(valid.path) and (sus.given != sus.suggested).all()
    assert sus.p_given.is_monotonic_increasing and (len(sus) == 0 or (tmp_path/'run'/'suspects.png').exists())
    assert cli('data', 'suspects', tmp_path/'nope', '--quiet').returncode == 1

def test_every_command_gets_the_same_split_and_skips_a_corrupt_file(tmp_path, monkeypatch):
    "`train`, `lr-find`, `cv`, `tune` and `data manifest` see the same rows in the same splits; a truncated PNG is left out by all."
    from pathlib import Path
    import medtrain.train as mt, medtrain.tune as mtune
    from medtrain.config import MedtrainError, load_config
    from medtrain.manifest import read_manifest
    from medtrain.prepare import prepare_data
    df = make_synthetic(tmp_path/'syn', SyntheticConfig(n_images=80, image_size=24, n_classes=3, majority=0.4), seed=0, progress=False)
    broken = str(Path(df.path[3]).resolve()); Path(broken).write_bytes(Path(broken).read_bytes()[:60])
    sets = ['data.source=csv', f"data.path={tmp_path/'syn'/'manifest.csv'}", 'data.size=24', 'train.bs=16', 'train.epochs=1',
            'train.device=cpu', 'model.arch=medcnn_small', 'data.valid_pct=0.2', 'data.test_pct=0.25', 'data.seed=7']
    args = [a for kv in sets for a in ('--set', kv)]
    def pairs(t, splits=('train', 'valid', 'test')): return sorted((str(Path(p).resolve()), s) for p, s in zip(t.path, t.split) if s in splits)
    want = pairs(prepare_data(load_config(overrides=sets, environ={}).data, progress=False).table)
    assert broken not in {p for p, _ in want} and {s for _, s in want} == {'train', 'valid', 'test'}

    cli_inproc('train', *args, '--run-dir', tmp_path/'run', '--quiet', check=True)
    assert pairs(pd.read_csv(tmp_path/'run'/'splits.csv')) == want
    assert list(pd.read_csv(tmp_path/'run'/'bad_files.csv').path.map(lambda p: str(Path(p).resolve()))) == [broken]

    cli_inproc('data', 'manifest', tmp_path/'syn'/'manifest.csv', '--out', tmp_path/'m.csv', '--valid-pct', 0.2, '--test-pct', 0.25, '--seed', 7, '-q', check=True)
    assert pairs(read_manifest(tmp_path/'m.csv')) == want

    class Seen(MedtrainError): pass   # stop each command once it has handed its data to training
    seen = {}
    def spy_learner(cfg, split, *a, **k): seen['lr-find'] = split.table; raise Seen('spied')
    def spy_train(cfg, run_dir, *a, split, **k): seen.setdefault(run_dir.parent.name, split.table); raise Seen('spied')
    monkeypatch.setattr(mt, 'build_learner', spy_learner)
    monkeypatch.setattr(mtune, 'train', spy_train)
    assert cli_inproc('lr-find', *args, '--out', tmp_path/'lrf').returncode == 1
    assert pairs(seen['lr-find']) == want
    assert cli_inproc('cv', *args, '--folds', 2, '--out', tmp_path/'cv').returncode == 1
    assert pairs(pd.read_csv(tmp_path/'cv'/'folds.csv')) == want
    assert sorted(str(Path(p).resolve()) for p in seen['cv'].path) == [p for p, _ in pairs(pd.DataFrame(want, columns=['path', 'split']), ('train', 'valid'))]
    (tmp_path/'space.yaml').write_text('train.lr: [0.001]\n')
    assert cli_inproc('tune', *args, '--space', tmp_path/'space.yaml', '--trials', 1, '--out', tmp_path/'tune').returncode == 1
    assert pairs(seen['trials']) == pairs(pd.DataFrame(want, columns=['path', 'split']), ('train', 'valid'))
