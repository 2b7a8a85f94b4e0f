"The decode-once cache inside `train`: same metrics as fastai's pipeline, reused by a second run (images and scan verdicts)."
import json
import pandas as pd
import medtrain.scan
from medtrain.scan import ScanCache
import numpy as np
from medtrain.config import load_config
from medtrain.train import train
from medtrain.cache import CachedImageDL
from conftest import load_tiny

def _cfg(tmp_path, *extra):
    return load_tiny(tmp_path, 'data.synthetic.n_images=200', 'model.arch=medcnn_small', 'train.precision=fp32', 'data.imbalance=none', *extra)   # the same arithmetic as before the auto defaults

def test_cache_same_metrics_and_reuse(tmp_path, monkeypatch):
    plain = train(_cfg(tmp_path, 'data.cache=off', 'train.channels_last=false'), tmp_path/'plain', progress=False)   # fastai's own pipeline
    cached_cfg = _cfg(tmp_path, 'data.cache=disk', f'data.cache_dir={tmp_path}/cache', 'train.channels_last=true')
    fast = train(cached_cfg, tmp_path/'fast', progress=False)
    assert isinstance(fast.learn.dls.train, CachedImageDL)
    files = list((tmp_path/'cache').glob('*.npy'))
    assert len(files) == 1
    # same images, same seed, same augmentation draws: the runs agree up to float noise
    hp = np.loadtxt(tmp_path/'plain'/'history.csv', delimiter=',', skiprows=1, usecols=(1, 2))
    hf = np.loadtxt(tmp_path/'fast'/'history.csv', delimiter=',', skiprows=1, usecols=(1, 2))
    assert np.allclose(hp, hf, atol=5e-3), (hp, hf)
    assert abs(fast.metrics["accuracy"] - plain.metrics["accuracy"]) <= 0.05
    assert len(ScanCache(tmp_path/'cache'/'scan.sqlite')) == 200   # every file's verdict kept next to the images
    mtime = files[0].stat().st_mtime_ns
    def opened(*a, **k): raise AssertionError(f"the second run opened {a[0]} to scan it")
    monkeypatch.setattr(medtrain.scan, 'check_file', opened)   # unchanged files: the verdicts (and hashes) come from the cache
    again = train(cached_cfg, tmp_path/'again', progress=False)
    cols = ['path', 'sha256', 'size', 'label', 'split']
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path/'again'/'manifest.csv')[cols], pd.read_csv(tmp_path/'fast'/'manifest.csv')[cols])
    assert files[0].stat().st_mtime_ns == mtime, "the second run reuses the cache"
    assert json.loads((tmp_path/'again'/'metrics.json').read_text())['accuracy'] == fast.metrics['accuracy']

def test_compile_trains_and_saves_plain_weights(tmp_path, monkeypatch):
    "`train.compile=true`: the compiled model trains, and what is saved loads into a plain model with the same outputs."
    import torch
    from medtrain.models import load_model
    compiled, compile = [], torch.compile
    monkeypatch.setattr(torch, 'compile', lambda *a, **k: compiled.append(a) or compile(*a, **k))
    cfg = _cfg(tmp_path, 'train.compile=true', 'train.epochs=1', 'data.synthetic.n_images=96')
    res = train(cfg, tmp_path/'compiled', progress=False)
    assert len(compiled) == 1, "the model was compiled for the fit"
    assert getattr(res.learn.model, '_compiled_call_impl', None) is None, "and is eager again after it"
    assert json.loads((tmp_path/'compiled'/'run.json').read_text())['status'] == 'finished'
    model, meta = load_model(tmp_path/'compiled'/'model')   # parameter names without torch.compile's prefixes
    x = torch.randn(4, meta.get('n_in', 3), 32, 32)
    res.learn.model.eval(); model.eval()
    with torch.no_grad(): assert torch.allclose(model(x), res.learn.model(x), atol=1e-4)
