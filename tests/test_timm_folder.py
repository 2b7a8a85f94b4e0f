"""The model out (issue H): a trained model folder is timm's hub layout that timm alone (no medtrain, no fastai) rebuilds
and that answers like medtrain; it publishes as a Hugging Face folder; its stored decision is what predict and serve apply."""
import json, subprocess, sys
import numpy as np, pandas as pd, pytest
from conftest import as_sets, tiny_config, medtrain

@pytest.fixture(scope='module')
def binary_run(tmp_path_factory):
    "One tiny two-class resnet18 run with the default head (timm's own classifier), shared by the tests of this file."
    d = tmp_path_factory.mktemp('binary')
    medtrain('train', *as_sets(tiny_config(d, 'train.epochs=1', 'model.arch=resnet18', 'data.synthetic.n_classes=2',
                                           'data.synthetic.majority=0.5', 'data.synthetic.n_images=200')), '--run-dir', d/'run', '--quiet', check=True)
    return d/'run'

TIMM_ONLY = r'''
import sys, importlib.abc
class Refuse(importlib.abc.MetaPathFinder):   # medtrain or fastai imported anywhere below: the test fails
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('medtrain', 'fastai'): raise ImportError(f'{name} must not be needed')
sys.meta_path.insert(0, Refuse())
import numpy as np, timm, torch
model = timm.create_model('local-dir:' + sys.argv[1], pretrained=True).eval()
with torch.no_grad(): out = model(torch.from_numpy(np.load(sys.argv[2]))).numpy()
np.save(sys.argv[3], out)
assert not [m for m in sys.modules if m.split('.')[0] in ('medtrain', 'fastai')]
print(type(model).__name__, model.num_classes, model.pretrained_cfg['label_names'] if 'label_names' in model.pretrained_cfg else '')
'''

def test_model_folder_loads_with_timm_alone(cli, binary_run, tmp_path):
    model_dir = binary_run/'model'
    cfg, meta = json.loads((model_dir/'config.json').read_text()), json.loads((model_dir/'model.json').read_text())
    assert (cfg['architecture'], cfg['num_classes'], cfg['label_names']) == ('resnet18', len(meta['classes']), meta['classes'])
    assert cfg['pretrained_cfg']['mean'] == meta['mean'] and cfg['pretrained_cfg']['input_size'][1:] == [32, 32]
    from medtrain.bundle import load_input, load_predictor
    paths = pd.read_csv(binary_run/'test.csv').path.head(4)
    x = np.stack([load_input(p, meta) for p in paths])             # medtrain's preprocessing of real test images
    np.save(tmp_path/'x.npy', x)
    ours = load_predictor(model_dir, 'torch').logits(x)            # what `medtrain predict` / serve compute
    r = subprocess.run([sys.executable, '-c', TIMM_ONLY, str(model_dir), str(tmp_path/'x.npy'), str(tmp_path/'y.npy')],
                       capture_output=True, text=True, cwd=tmp_path, env={'PATH': '/usr/bin:/bin', 'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('ResNet')
    assert np.abs(np.load(tmp_path/'y.npy') - ours).max() <= 1e-4
    # the same folder published: a Hugging Face hub folder with a model card, checked with timm alone; pushing offline says so
    from conftest import medtrain_inproc
    cli('evaluate', '--model-path', model_dir, '--test-data', binary_run/'test.csv', '--quiet', check=True)   # RUN/test/metrics.json
    r = medtrain_inproc('export', model_dir, '--format', 'hf', '--out', tmp_path/'hf', check=True)
    assert 'timm-only parity' in r.stdout
    assert sorted(p.name for p in (tmp_path/'hf').iterdir()) == ['README.md', 'config.json', 'model.json', 'model.safetensors']
    card = (tmp_path/'hf'/'README.md').read_text()
    assert meta['data_version'] in card and '95% CI' in card and 'Limitations' in card
    import os
    os.environ['HF_HUB_OFFLINE'] = '1'
    try: r = medtrain_inproc('push', tmp_path/'hf', '--repo', 'org/name')
    finally: del os.environ['HF_HUB_OFFLINE']
    assert r.returncode == 2 and 'nothing uploaded' in r.stderr and 'Traceback' not in r.stderr

def test_hub_weights_offline_stop_before_any_work(tmp_path, monkeypatch):
    from conftest import medtrain_inproc
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path/'empty-cache'))   # not in the cache either
    for src in ('true', 'hf-hub:timm/resnet18.a1_in1k'):
        r = medtrain_inproc('train', *as_sets(tiny_config(tmp_path, 'model.arch=resnet18', f'model.pretrained={src}')), '--run-dir', tmp_path/'run', '--quiet')
        assert r.returncode == 2 and 'HF_HUB_OFFLINE is set' in r.stderr and 'model.pretrained=/path/to/model.safetensors' in r.stderr, r.stderr
        assert 'Traceback' not in r.stderr and not (tmp_path/'run').exists() and not (tmp_path/'data').exists()   # no run, no data

def test_evaluated_decision_is_served(binary_run, tmp_path):
    "What `evaluate --calibrate --target-sensitivity` chose on validation is what predict and serve apply."
    from conftest import medtrain_inproc as cli_inproc
    model = binary_run/'model'
    trained = json.loads((model/'model.json').read_text())['decision']
    assert trained['source'].startswith('train') and 0 <= trained['threshold'] <= 1     # a binary run ships a threshold from validation
    classes = json.loads((model/'model.json').read_text())['classes']
    cli_inproc('evaluate', '--model-path', model, '--test-data', binary_run/'test.csv', '--out', tmp_path/'ev', '--calibrate',
               '--target-sensitivity', '0.95', '--positive-class', classes[0], '--quiet', check=True)
    reported = json.loads((tmp_path/'ev'/'metrics.json').read_text())['operating_point']['picked']['sensitivity']
    d = json.loads((model/'model.json').read_text())['decision']
    assert (d['positive_class'], d['target'], d['metric']) == (classes[0], 0.95, 'sensitivity') and d['temperature'] > 0
    cli_inproc('predict', '--model', model, '--input', binary_run/'test.csv', '--output', tmp_path/'pred.csv', '--backend', 'torch',
               '--quiet', check=True)
    pred, test = pd.read_csv(tmp_path/'pred.csv'), pd.read_csv(binary_run/'test.csv')
    label = dict(zip(test.path.map(lambda p: str(p if p.startswith('/') else binary_run/p)), test.label))
    y = pred.path.map(lambda p: label.get(p, label.get(str(p))))
    assert y.notna().all()
    pos = y == classes[0]
    served = float((pred.decision[pos] == classes[0]).mean())            # sensitivity of the served decisions on the test split
    assert abs(served - reported) < 1e-9, (served, reported)
    from medtrain.serve import predict_batch
    from medtrain.bundle import load_predictor, load_input
    p = load_predictor(model, 'torch')
    ans = predict_batch(p, np.stack([load_input(pred.path[0], p.meta)]))[0]
    assert ans['decision']['label'] == pred.decision[0] and ans['decision']['threshold'] == d['threshold']
