"A MedMNIST-style grayscale npz, 28 px, trained with medcnn_small and evaluated, through the CLI."
import json
import numpy as np, pandas as pd
from PIL import Image
from medtrain.config import SyntheticConfig
from medtrain.data import make_synthetic

def test_npz_grayscale_with_small_cnn(cli, tmp_path):
    df = make_synthetic(tmp_path/'syn', SyntheticConfig(n_images=240, n_classes=3, majority=0.4, image_size=28), seed=0, progress=False)
    gray = np.stack([np.asarray(Image.open(p).convert('L')) for p in df.path])
    labels = df.label.astype('category').cat.codes.values[:, None]
    n1, n2 = 160, 200
    np.savez(tmp_path/'mini.npz', train_images=gray[:n1], train_labels=labels[:n1], val_images=gray[n1:n2],
             val_labels=labels[n1:n2], test_images=gray[n2:], test_labels=labels[n2:])
    sets = ['data.source=npz', f'data.path={tmp_path}/mini.npz', 'data.size=28', 'model.arch=medcnn_small',
            'train.epochs=3', 'train.bs=32', 'train.device=cpu', 'train.lr=0.01']
    cli('train', *[a for s in sets for a in ('--set', s)], '--run-dir', tmp_path/'run', '--quiet', check=True)
    meta = json.loads((tmp_path/'run'/'model'/'model.json').read_text())
    assert meta['n_in'] == 1 and meta['arch'] == 'medcnn_small' and meta['size'] == 28
    split = pd.read_csv(tmp_path/'run'/'splits.csv').split.value_counts().to_dict()
    assert split == {'train': 160, 'valid': 40, 'test': 40}          # the npz's own splits are used as given
    cli('evaluate', '--model-path', tmp_path/'run'/'model', '--test-data', tmp_path/'run'/'test.csv',
        '--out', tmp_path/'eval', '--quiet', check=True)
    m = json.loads((tmp_path/'eval'/'metrics.json').read_text())
    assert m['n'] == 40 and len(m['confusion_matrix']) == 3
