"The synthetic generator and the folder source, as the quickstart and users rely on them."
import json, shutil
import numpy as np, pandas as pd, pytest
from PIL import Image
from medtrain.config import SyntheticConfig, DataConfig, DataError
from medtrain.data import make_synthetic, load_source, assign_splits, check_leaks
from conftest import medtrain_inproc as cli_inproc

@pytest.mark.parametrize('majority,noise', [(0.67, 0.0), (0.5, 0.2)])
def test_generator_rates(tmp_path, majority, noise):
    df = make_synthetic(tmp_path/'s', SyntheticConfig(n_images=400, majority=majority, noise=noise, image_size=24), seed=3, progress=False)
    assert len(df) == 400
    assert (df.clean_label == 'nv').mean() == pytest.approx(majority, abs=0.005)
    assert (df.label != df.clean_label).mean() == pytest.approx(noise, abs=0.003)
    assert df.label.nunique() == 7 and df.patient_id.nunique() < 400

def test_generator_deterministic_and_seeded(tmp_path):
    cfg = SyntheticConfig(n_images=50, image_size=24)
    a = make_synthetic(tmp_path/'a', cfg, seed=1, progress=False)
    b = make_synthetic(tmp_path/'b', cfg, seed=1, progress=False)
    c = make_synthetic(tmp_path/'c', cfg, seed=2, progress=False)
    same = [open(x, 'rb').read() == open(y, 'rb').read() for x, y in zip(a.path, b.path)]
    assert all(same)
    assert not all(np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y))) for x, y in zip(a.path, c.path))

def test_generated_images_are_rgb_and_sized(tmp_path):
    df = make_synthetic(tmp_path/'s', SyntheticConfig(n_images=20, n_classes=2, image_size=40), seed=0, progress=False)
    im = Image.open(df.path[0])
    assert im.mode == 'RGB' and im.size == (40, 40)

def test_folder_source_flat_and_split(tmp_path):
    df = make_synthetic(tmp_path/'s', SyntheticConfig(n_images=60, image_size=24, majority=0.4), seed=0, progress=False)
    for i, (p, lbl) in enumerate(zip(df.path, df.label)):
        for d in (tmp_path/'flat'/lbl, tmp_path/'split'/['train', 'val', 'test'][i % 3]/lbl):
            d.mkdir(parents=True, exist_ok=True); shutil.copy(p, d/f'{i}.png')
    flat = load_source(DataConfig(source='folder', path=tmp_path/'flat'))
    assert sorted(flat.label) == sorted(df.label) and 'split' not in flat
    sp = assign_splits(flat, 0.2, 0.2, seed=0)
    assert set(sp.split) == {'train', 'valid', 'test'}
    given = load_source(DataConfig(source='folder', path=tmp_path/'split'))
    assert given.split.value_counts().to_dict() == {'train': 20, 'valid': 20, 'test': 20}
    assert assign_splits(given).split.tolist() == given.split.tolist()      # split folders are used as given

def test_patient_grouped_split_never_leaks(tmp_path):
    df = make_synthetic(tmp_path/'s', SyntheticConfig(n_images=300, image_size=16, images_per_patient=4), seed=0, progress=False)
    for seed in range(5):
        sp = assign_splits(df, 0.2, 0.2, seed=seed)
        check_leaks(sp)
        assert sp.groupby('patient_id').split.nunique().max() == 1
    sp.loc[sp.index[sp.split == 'train'][0], 'split'] = 'test'
    with pytest.raises(DataError, match='split leak'): check_leaks(sp)


# --- compressed DICOM (issue L.17): what a PACS exports decodes, and the scan keeps it ---
LOSSLESS_SYNTAXES = ('RLELossless', 'JPEGLSLossless', 'JPEG2000Lossless', 'JPEGLosslessSV1')
DICOM_PLUGINS = ('pylibjpeg', 'openjpeg', 'libjpeg', 'rle', 'jpeg_ls', 'gdcm')    # the import names of pydicom's decoder plugins

def _compressed_dicoms(folder):
    "A generated 16-bit image as `plain.dcm`, and one copy per lossless compressed transfer syntax (`<syntax>.dcm`)."
    import pydicom, gdcm
    from pydicom import uid
    from medtrain.data import write_dicom
    yy, xx = np.mgrid[:48, :40]
    pix = (yy * 700 + xx * 300 + np.random.default_rng(0).integers(0, 900, (48, 40))).astype(np.uint16)   # a ramp over 16 bits, plus noise
    write_dicom(folder/'plain.dcm', pix)
    for name in LOSSLESS_SYNTAXES[:3]:                    # pydicom 3 encodes these (numpy, pyjpegls, pylibjpeg-openjpeg)
        ds = pydicom.dcmread(folder/'plain.dcm'); ds.compress(getattr(uid, name)); ds.save_as(folder/f'{name}.dcm', enforce_file_format=True)
    # pydicom has no JPEG Lossless encoder; GDCM (python-gdcm, part of the dicom extra) writes one
    r = gdcm.ImageReader(); r.SetFileName(str(folder/'plain.dcm')); assert r.Read()
    change = gdcm.ImageChangeTransferSyntax(); change.SetInput(r.GetImage())
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1)); assert change.Change()
    w = gdcm.ImageWriter(); w.SetFileName(str(folder/'JPEGLosslessSV1.dcm')); w.SetFile(r.GetFile()); w.SetImage(change.GetOutput()); assert w.Write()
    for name in LOSSLESS_SYNTAXES:
        assert pydicom.dcmread(folder/f'{name}.dcm', stop_before_pixels=True).file_meta.TransferSyntaxUID == getattr(uid, name)
    return pix

def test_compressed_dicom_decodes_and_passes_the_scan(tmp_path):
    "JPEG Lossless, JPEG-LS, JPEG 2000 and RLE DICOM load with the very pixels of the uncompressed file, and the scan keeps them."
    import pydicom
    from medtrain.data import open_image
    from medtrain.scan import scan_table
    pix = _compressed_dicoms(tmp_path)
    plain = np.asarray(open_image(tmp_path/'plain.dcm', 1))
    assert plain.std() > 20                                                       # a real image, not a constant
    for name in LOSSLESS_SYNTAXES:
        f = tmp_path/f'{name}.dcm'
        np.testing.assert_array_equal(pydicom.dcmread(f).pixel_array, pix, err_msg=name)
        np.testing.assert_array_equal(np.asarray(open_image(f, 1)), plain, err_msg=name)
        np.testing.assert_array_equal(np.asarray(open_image(f, 3))[..., 0], plain, err_msg=name)
    files = [tmp_path/f'{n}.dcm' for n in LOSSLESS_SYNTAXES]
    rep = scan_table(pd.DataFrame({'path': files, 'label': 'a'}), progress=False, workers=1)
    assert rep.problem.isna().all(), rep[['path', 'problem', 'detail']].to_string()

def test_compressed_dicom_without_decoders_names_the_extra(tmp_path):
    "With pydicom's decoder plugins missing (an install made without them), the file is 'unsupported' and the advice names medtrain[dicom]."
    import subprocess, sys, json
    _compressed_dicoms(tmp_path)
    script = f"""
import sys, json
for m in {DICOM_PLUGINS!r}: sys.modules[m] = None          # as if the plugins were not installed
import pandas as pd
from medtrain.data import open_image
from medtrain.config import DataError
from medtrain.scan import scan_table
names = {list(LOSSLESS_SYNTAXES)!r}
rep = scan_table(pd.DataFrame({{'path': [f'{tmp_path}/' + n + '.dcm' for n in names], 'label': 'a'}}), progress=False, workers=1)
try: open_image('{tmp_path}/JPEGLSLossless.dcm', 1); err = None
except DataError as e: err = str(e)
print(json.dumps(dict(problems=dict(zip(names, [p if isinstance(p, str) else None for p in rep.problem])), details=dict(zip(names, rep.detail)), err=err)))
"""
    r = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    for name in ('JPEGLSLossless', 'JPEGLosslessSV1'):                        # only the plugins decode these
        assert out['problems'][name] == 'unsupported', out
        assert "pip install 'medtrain[dicom]'" in out['details'][name], out
    assert out['problems']['RLELossless'] is None                            # pydicom decodes RLE itself
    assert out['err'] and 'JPEGLSLossless.dcm' in out['err'] and "medtrain[dicom]" in out['err'], out
def test_regenerating_synthetic_data_never_deletes_user_files(tmp_path):
    cli = cli_inproc
    "Another spec regenerates the folder, but a user's file in it (or in a leftover `.partial`) stops the run and survives."
    small = ['--n-images', 30, '--image-size', 16, '--quiet']
    cli('data', 'synth', '--out', tmp_path/'syn', '--seed', 0, *small, check=True)
    (tmp_path/'syn'/'notes.txt').write_text('my notes')
    (tmp_path/'syn'/'images'/'extra').mkdir(); (tmp_path/'syn'/'images'/'extra'/'mine.png').write_bytes(b'mine')
    r = cli('data', 'synth', '--out', tmp_path/'syn', '--seed', 1, *small)
    assert r.returncode == 3 and 'notes.txt' in r.stderr and 'did not write' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert (tmp_path/'syn'/'notes.txt').read_text() == 'my notes' and (tmp_path/'syn'/'images'/'extra'/'mine.png').exists()
    assert len(list((tmp_path/'syn'/'images').glob('*.png'))) == 30        # the old dataset is untouched too
    (tmp_path/'syn'/'notes.txt').unlink(); shutil.rmtree(tmp_path/'syn'/'images'/'extra')
    (tmp_path/'syn.partial').mkdir(); (tmp_path/'syn.partial'/'draft.txt').write_text('a folder the user happened to call syn.partial')
    r = cli('data', 'synth', '--out', tmp_path/'syn', '--seed', 1, *small)
    assert r.returncode == 3 and 'draft.txt' in r.stderr and (tmp_path/'syn.partial'/'draft.txt').exists(), r.stderr
    shutil.rmtree(tmp_path/'syn.partial')
    r = cli('data', 'synth', '--out', tmp_path/'syn', '--seed', 1, *small, check=True)   # only generated files: regenerated
    assert pd.read_csv(tmp_path/'syn'/'manifest.csv').path.tolist() == [f'images/{i:06d}.png' for i in range(30)]
    assert json.loads((tmp_path/'syn'/'synthetic.json').read_text())['seed'] == 1 and not (tmp_path/'syn.partial').exists()

def test_data_defaults_are_written_once():
    "The decompression-bomb limit (PIL's 89 478 485 pixels) is one constant, not a number re-typed in the scan and the CLI."
    import re
    from pathlib import Path
    src = ''.join(p.read_text() for p in (Path(__file__).parents[1]/'medtrain').glob('*.py') if p.name != '_modidx.py')
    assert len(re.findall(r'89_?478_?485', src)) == 1
