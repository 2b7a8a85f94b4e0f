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
