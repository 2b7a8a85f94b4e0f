"""Issue Q (model side): a model folder's sidecar is input and is checked on every load, registry names have one rule,
the DICOM pixel count is read from headers before decoding, and the feedback store is private and bounded."""
import json
from pathlib import Path
import pytest

from medtrain.config import MedtrainError

# --- 1. sidecar validation: both readers, one rule ----------------------------------------------------------------

@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    from medtrain.models import build_model, save_model
    d = tmp_path_factory.mktemp('sidecar')/'model'
    save_model(build_model('medcnn_small', 3, 2).eval(), d, dict(arch='medcnn_small', n_in=3, classes=['benign', 'malignant'], size=32,
                                                                 mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]))
    return d

def _edit(model_dir, tmp_path, change=None, text=None):
    import shutil
    d = tmp_path/'m'; shutil.copytree(model_dir, d)
    meta = json.loads((d/'model.json').read_text())
    (d/'model.json').write_text(text if text is not None else json.dumps(change(meta)))
    return d

BAD = {
    'classes: must list at least one class': lambda m: dict(m, classes=[]),
    'classes: missing': lambda m: {k: v for k, v in m.items() if k != 'classes'},
    "classes: lists 'benign' twice": lambda m: dict(m, classes=['benign', 'benign']),
    'decision.temperature: Input should be a valid number': lambda m: dict(m, decision=dict(temperature='warm')),
    'size: Input should be a valid integer': lambda m: dict(m, size='abc'),
    "format: unknown format 'medtrain-model/7'": lambda m: dict(m, format='medtrain-model/7'),
}

@pytest.mark.parametrize('why', list(BAD))
def test_both_sidecar_readers_refuse_a_bad_sidecar_naming_folder_and_field(model_dir, tmp_path, why):
    from medtrain import bundle, models
    d = _edit(model_dir, tmp_path, BAD[why])
    for read in (bundle.read_meta, models.read_meta, bundle.load_torch_model):
        with pytest.raises(MedtrainError) as e: read(d)
        assert f"{d}/model.json: {why}" in str(e.value), (read, str(e.value))

def test_a_number_past_the_digit_limit_is_one_sentence_not_a_traceback(model_dir, tmp_path, cli_inproc):
    text = json.dumps(json.loads((model_dir/'model.json').read_text())).replace('"size": 32', '"size": ' + '7' * 100_000)
    d = _edit(model_dir, tmp_path, text=text)
    from medtrain import bundle, models
    for read in (bundle.read_meta, models.read_meta):
        with pytest.raises(MedtrainError, match="not valid JSON .a number longer than Python's digit limit"): read(d)
    r = cli_inproc('predict', '--model-path', d, '--input', tmp_path, '--output', tmp_path/'out.csv', '--backend', 'torch', '-q')
    assert r.returncode != 0 and 'Traceback' not in r.stderr and "digit limit" in r.stderr, r.stderr

def test_both_readers_agree_on_a_legitimate_folder_of_each_format(model_dir, tmp_path):
    from medtrain import bundle, models
    assert bundle.read_meta(model_dir) == models.read_meta(model_dir)
    old = _edit(model_dir, tmp_path, lambda m: {k: v for k, v in m.items() if k not in ('format', 'decision')})   # medtrain-model/1
    assert bundle.read_meta(old) == models.read_meta(old) and models.read_meta(old)['head'] == 'fastai'

# --- 2. registry names: one rule, one sentence ----------------------------------------------------------------------

LONG = 'n' * 300

@pytest.mark.parametrize('args', [('register', '{model}', '--name', LONG, '--no-reference'), ('promote', LONG, '1'),
                                  ('rollback', LONG), ('list', LONG), ('show', f'{LONG}@production')], ids=lambda a: a[0])
def test_a_300_character_registry_name_is_one_sentence(model_dir, tmp_path, cli_inproc, args):
    args = [a.format(model=model_dir) for a in args]
    r = cli_inproc('registry', *args, '--registry', tmp_path/'reg')
    assert r.returncode == 2 and "(300 characters): use letters, digits, '_', '.', '-' (1–64 characters" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not list((tmp_path/'reg').glob('n*')), r.stderr

def test_a_long_reference_where_a_model_path_goes_is_one_sentence(model_dir, tmp_path, cli_inproc, monkeypatch):
    monkeypatch.setenv('MEDTRAIN_REGISTRY', str(tmp_path/'reg'))
    from medtrain.registry import resolve_model, RegistryError
    with pytest.raises(RegistryError, match=r'\(300 characters\)'): resolve_model(f'{LONG}@production')
    r = cli_inproc('predict', '--model', LONG, '--input', tmp_path, '--output', tmp_path/'o.csv', '--backend', 'torch', '-q')
    assert r.returncode != 0 and 'no such model folder' in r.stderr, r.stderr

# --- 3. DICOM pixel bomb: the count comes from headers, before anything is decoded ------------------------------------

def test_a_small_declared_dicom_carrying_a_large_jpeg_counts_the_jpeg():
    import io, pydicom
    from PIL import Image
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate
    from medtrain.images import image_pixels
    ds = pydicom.dcmread(get_testdata_file('SC_rgb_jpeg_dcmtk.dcm'))
    jpg = io.BytesIO(); Image.new('L', (4000, 4000)).save(jpg, 'JPEG')
    ds.Rows = ds.Columns = 10; ds.PixelData = encapsulate([jpg.getvalue()])
    out = io.BytesIO(); ds.save_as(out)
    assert image_pixels(out.getvalue()) == 4000 * 4000 and ds.Rows * ds.Columns == 100

# --- 4. feedback store: private file, bounded history -----------------------------------------------------------------

def test_feedback_db_is_private_under_umask_022(tmp_path):
    import os, stat
    from medtrain.feedback import FeedbackStore
    umask = os.umask(0o022)
    try:
        store = FeedbackStore(tmp_path/'fb.sqlite', retention_days=365)
        store.record('mel', 0.9)
    finally: os.umask(umask)
    assert stat.S_IMODE((tmp_path/'fb.sqlite').stat().st_mode) == 0o600

def test_feedback_older_than_the_retention_is_purged(tmp_path):
    import time
    from medtrain.feedback import FeedbackStore
    store = FeedbackStore(tmp_path/'fb.sqlite', retention_days=7, purge_every_s=0)
    with store._con() as con:
        con.execute("INSERT INTO predictions VALUES (?, ?, 'derm', 1, 'mel', 0.9)", ('0' * 32, time.time() - 8 * 86400))
        con.execute("INSERT INTO feedback VALUES (?, ?, 'nv')", ('0' * 32, time.time() - 8 * 86400))
    pid = store.record('nv', 0.6)
    store.add(pid, 'nv', ['mel', 'nv'])
    assert store.table().id.tolist() == [pid]

def test_a_huge_model_path_is_not_echoed_back_whole():
    "`--model-path` of 100,000 characters: one short sentence (the start and end of the argument), no OSError."
    from medtrain.registry import resolve_model
    from medtrain.config import ConfigError
    with pytest.raises(ConfigError) as e: resolve_model('x' * 100_000)
    assert 'no such model folder' in str(e.value) and len(str(e.value)) < 400
