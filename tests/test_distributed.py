"Data-parallel training in 2 CPU processes (gloo) through the CLI: it completes, ranks split the data, rank 0 writes."
import json, math
import pandas as pd, pytest
from conftest import medtrain

@pytest.mark.parametrize('cache', ['off', 'disk'])   # fastai's loaders, and the decode-once cache's (built by both ranks)
def test_two_process_cpu_training(tmp_path, cache):
    import os
    from pathlib import Path
    here = Path(__file__).parent
    sets = ['data.synthetic.n_images=200', 'data.synthetic.image_size=32', 'data.size=32', f'data.path={tmp_path}/data',
            'data.synthetic.majority=0.4', 'train.epochs=3', 'train.bs=8', 'train.device=cpu', 'model.arch=medcnn_small',
            'augment.enabled=false', 'train.callbacks=[plugins:SampleLog]', f'data.cache={cache}', f'data.cache_dir={tmp_path}/cache']
    r = medtrain('train', '--num-processes', '2', *[a for s in sets for a in ('--set', s)], '--run-dir', tmp_path/'run', '--quiet',
                 env={'PYTHONPATH': f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}, check=True)
    assert r.stdout.count('run dir:') == 1                                   # only rank 0 speaks
    run = tmp_path/'run'
    info = json.loads((run/'run.json').read_text())
    assert info['status'] == 'finished' and info['processes'] == 2
    hist = pd.read_csv(run/'history.csv')
    assert len(hist) == 3 and hist[['train_loss', 'valid_loss']].map(math.isfinite).all().all()
    m = json.loads((run/'metrics.json').read_text())
    assert 0 <= m['accuracy'] <= 1 and m['n'] == (pd.read_csv(run/'splits.csv').split == 'valid').sum()
    a, b = (json.loads((run/f'samples_rank{r}.json').read_text()) for r in (0, 1))
    n_train = (pd.read_csv(run/'splits.csv').split == 'train').sum()
    assert abs(len(a) - len(b)) <= 8 and len(a) + len(b) >= n_train - 2 * 8   # each rank takes about half an epoch
    assert not set(a) & set(b)                                                # and not the same images
    assert (run/'model'/'model.safetensors').exists()
    if cache == 'disk': assert len(list((tmp_path/'cache').glob('*.npy'))) == 1 and (tmp_path/'cache'/'scan.sqlite').exists()

@pytest.mark.parametrize('cache', ['off', 'disk'])   # fastai's WeightedDL, and the cache loader's weighted draw
def test_two_process_oversampling(tmp_path, cache):
    "data.imbalance=oversample under DDP: rank 0's weighted draw is shared, each rank takes its part, and the classes come out balanced."
    import os
    from collections import Counter
    from pathlib import Path
    here = Path(__file__).parent
    sets = ['data.synthetic.n_images=280', 'data.synthetic.image_size=24', 'data.size=24', f'data.path={tmp_path}/data', 'data.synthetic.n_classes=3',
            'data.synthetic.majority=0.8', 'data.imbalance=oversample', 'train.epochs=1', 'train.bs=8', 'train.device=cpu', 'model.arch=medcnn_small',
            'augment.enabled=false', 'train.callbacks=[plugins:SampleLog]', f'data.cache={cache}', f'data.cache_dir={tmp_path}/cache']
    medtrain('train', '--num-processes', '2', *[a for s in sets for a in ('--set', s)], '--run-dir', tmp_path/'run', '--quiet',
             env={'PYTHONPATH': f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}, check=True)
    run = tmp_path/'run'
    splits = pd.read_csv(run/'splits.csv')
    train = splits[splits.split == 'train']
    a, b = (json.loads((run/f'labels_rank{r}.json').read_text()) for r in (0, 1))
    sa, sb = (json.loads((run/f'samples_rank{r}.json').read_text()) for r in (0, 1))
    assert abs(len(a) - len(b)) <= 8 and len(a) + len(b) >= len(train) - 2 * 8   # an epoch's worth of draws, split between the ranks
    assert sa != sb                                                                # not the same draw twice
    share = train.label.value_counts(normalize=True)
    drawn = pd.Series(Counter(a + b)) / len(a + b)
    major = share.idxmax()
    assert share[major] > 0.7 and drawn[major] < 0.5, (share.to_dict(), drawn.to_dict())   # ~1/3 each when balanced
    assert set(drawn.index) == set(share.index)
