"Real transfer learning: pretrain on one synthetic task, fine-tune on another with few labels, beat training from scratch."
import json

COMMON = ['data.size=32', 'data.synthetic.image_size=32', 'train.device=cpu', 'train.bs=32']
TASK_B = ['data.synthetic.n_images=100', 'data.synthetic.n_classes=4', 'data.synthetic.majority=0.3', 'data.seed=2',
          'data.test_pct=0.1', 'train.lr=0.002']

def _set(opts): return [a for o in opts for a in ('--set', o)]

def test_finetuned_beats_scratch_with_the_same_budget(cli, tmp_path):
    # task A: 7 lesion classes, 1500 images
    cli('train', *_set(COMMON + [f'data.path={tmp_path}/A', 'data.synthetic.n_images=1500', 'data.seed=1', 'train.epochs=5']),
        '--run-dir', tmp_path/'A_run', '--quiet', check=True)
    # task B: 4 classes, 100 labelled images (other patients, other seed); 8 epochs each
    b = COMMON + TASK_B + [f'data.path={tmp_path}/B']
    r = cli('train', *_set(b + [f'model.pretrained={tmp_path}/A_run/model', 'train.freeze_epochs=2', 'train.epochs=6']),
            '--run-dir', tmp_path/'finetuned', '--quiet', check=True)
    assert 'pretrained' in r.stdout and 'loaded' in r.stdout          # the missing/unexpected-keys report
    cli('train', *_set(b + ['train.epochs=8']), '--run-dir', tmp_path/'scratch', '--quiet', check=True)
    assert len(open(tmp_path/'finetuned'/'history.csv').read().splitlines()) == 1 + 8   # 2 frozen + 6 unfrozen epochs, one history
    # an independent test set of task B: 200 new images (the margins are wide: ~0.93 vs ≤0.2 over 4 seeds, benchmarks/RESULTS.md)
    cli('data', 'synth', '--out', tmp_path/'B_test', '--n-images', '200', '--n-classes', '4', '--majority', '0.3',
        '--image-size', '32', '--seed', '3', '--quiet', check=True)
    f1 = {}
    for name in ('finetuned', 'scratch'):
        cli('evaluate', '--model-path', tmp_path/name/'model', '--test-data', tmp_path/'B_test'/'manifest.csv',
            '--out', tmp_path/f'{name}_eval', '--quiet', check=True)
        f1[name] = json.loads((tmp_path/f'{name}_eval'/'metrics.json').read_text())['macro_f1']
    print(f"task B test macro-F1: fine-tuned {f1['finetuned']:.3f}, scratch {f1['scratch']:.3f}")
    assert f1['finetuned'] > 0.6 and f1['finetuned'] > f1['scratch'] + 0.2, f1

def test_readers_use_the_models_own_normalisation(tmp_path):
    "A model trained on a pretrained source's mean/std is read back with them: continual learning scores its test sets as serving would."
    import numpy as np, torch
    from medtrain.config import SyntheticConfig
    from medtrain.data import make_synthetic
    from medtrain.models import build_model, save_model
    from medtrain.bundle import load_input
    from medtrain.continual import accuracy_on
    df = make_synthetic(tmp_path/'syn', SyntheticConfig(n_images=8, n_classes=2, image_size=32), seed=0, progress=False)
    classes, stats = sorted(df.label.unique()), dict(mean=[0.2, 0.3, 0.4], std=[0.1, 0.2, 0.3])   # not medtrain's default
    meta = dict(arch='medcnn_small', n_in=3, classes=classes, size=32, **stats)
    net = build_model('medcnn_small', 3, 2).eval()
    save_model(net, tmp_path/'model', meta)
    x = torch.tensor(np.stack([load_input(p, dict(meta)) for p in df.path]))   # what serving feeds the model
    with torch.no_grad(): served = torch.softmax(net(x), 1).numpy()
    probs, _ = accuracy_on(net, meta, df[['path', 'label']])
    assert np.abs(probs - served).max() < 1e-5, np.abs(probs - served).max()

def test_pretrained_from_a_registry_reference(tmp_path, monkeypatch):
    "`model.pretrained: NAME@stage` starts from that registered version's weights and normalisation (the default registry)."
    import pytest, torch
    from medtrain.config import load_config, MedtrainError
    from medtrain.models import build_model, save_model
    from medtrain.registry import Registry
    monkeypatch.setenv('MEDTRAIN_REGISTRY', str(tmp_path/'registry'))
    source = build_model('medcnn_small', 1, 3)
    save_model(source, tmp_path/'run'/'model', dict(arch='medcnn_small', n_in=1, classes=['a', 'b', 'c'], size=28, mean=[0.3], std=[0.2]))
    reg = Registry(tmp_path/'registry')
    reg.promote('chest', reg.register(tmp_path/'run', 'chest')['version'], 'production')
    cfg = load_config(overrides=['model.arch=medcnn_small', 'model.pretrained=chest@production'])   # accepted as a reference
    model = build_model(cfg.model.arch, 1, 5, pretrained=cfg.model.pretrained)   # another task: 5 classes
    assert torch.equal(model.features[0][0].weight, source.features[0][0].weight)
    rep = model.pretrained_report
    assert rep['mean'] == [0.3] and rep['std'] == [0.2] and rep['fresh'] == ['fc.bias', 'fc.weight'], rep
    with pytest.raises(MedtrainError, match='chest@staging'):   # no version at that stage: one message naming the reference
        build_model('medcnn_small', 1, 5, pretrained='chest@staging')
