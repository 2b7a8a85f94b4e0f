"Issue O: what a user gets without flags — every `auto` resolved, printed and recorded; seeded runs repeat; TTA as decided at training."
import json
import numpy as np
from medtrain.train import train
from medtrain.evaluate import evaluate
from medtrain.config import EvalConfig
from conftest import load_tiny

def _cfg(tmp_path, *extra):
    return load_tiny(tmp_path, 'model.arch=medcnn_small', 'train.epochs=1', 'data.synthetic.n_classes=2',
                     'data.synthetic.majority=0.85', f'data.cache_dir={tmp_path}/cache', *extra)

def test_no_flags_resolves_every_auto_and_repeats(tmp_path, capsys):
    "No flags: cache, class weights, precision and memory format are chosen, printed once, recorded; a second seeded run gives the same metrics."
    a = train(_cfg(tmp_path), tmp_path/'a')
    out = capsys.readouterr().out
    auto = json.loads((tmp_path/'a'/'run.json').read_text())['auto']
    assert {k: auto[k]['value'] for k in ('data.cache', 'data.imbalance')} == {'data.cache': 'memory', 'data.imbalance': 'weighted_loss'}
    assert auto['train.precision']['value'] in ('fp32', 'bf16') and auto['train.channels_last']['value'] in (True, False)
    assert auto['train.precision']['ms_per_step'], "the measured step times are recorded"
    for k in auto: assert out.count(f"auto: {k} = ") == 1, out
    assert (tmp_path/'cache'/'fast_path.json').exists()
    b = train(_cfg(tmp_path), tmp_path/'b', progress=False)
    assert json.loads((tmp_path/'b'/'run.json').read_text())['auto']['train.precision']['why'].endswith('(cached)')
    assert a.metrics['accuracy'] == b.metrics['accuracy'] and a.metrics['macro_f1'] == b.metrics['macro_f1']
    ha, hb = (np.loadtxt(tmp_path/r/'history.csv', delimiter=',', skiprows=1, usecols=(1, 2)) for r in 'ab')
    assert np.array_equal(ha, hb), (ha, hb)
    # forced values are kept and nothing is measured or recorded for them
    c = train(_cfg(tmp_path, 'data.cache=off', 'data.imbalance=none', 'train.precision=fp32', 'train.channels_last=false'), tmp_path/'c', progress=False)
    assert 'auto' not in json.loads((tmp_path/'c'/'run.json').read_text())
    assert type(c.learn.dls.train).__name__ == 'TfmdDL' and c.learn.loss_func.func.weight is None
    # TTA: decided on validation at training, shipped in the sidecar, used by evaluate unless told otherwise
    tta = json.loads((tmp_path/'a'/'run.json').read_text())['tta']
    meta = json.loads((tmp_path/'a'/'model'/'model.json').read_text())
    assert meta['tta'] == tta['used'] == (tta['balanced_accuracy_tta'] > tta['balanced_accuracy'])
    for used in (True, False):
        (tmp_path/'a'/'model'/'model.json').write_text(json.dumps(dict(meta, tta=used)))
        m = evaluate(tmp_path/'a'/'model', tmp_path/'a'/'test.csv', tmp_path/f'eval{used}', progress=False, cfg=EvalConfig(n_boot=20))
        assert ('tta' in m) == used

def test_startup_reuses_scan_verdicts_without_the_image_cache(tmp_path, monkeypatch):
    "With `data.cache=off` too, a second start on unchanged files opens none of them (verdicts and hashes cached); a changed file is scanned again."
    import medtrain.scan
    from medtrain.prepare import prepare_data
    cfg = _cfg(tmp_path, 'data.cache=off', 'data.synthetic.n_images=60')
    first = prepare_data(cfg.data, progress=False)
    opened = []
    real = medtrain.scan.check_file
    monkeypatch.setattr(medtrain.scan, 'check_file', lambda p, *a, **k: opened.append(str(p)) or real(p, *a, **k))
    again = prepare_data(cfg.data, progress=False)
    assert opened == [] and again.version == first.version
    changed = first.table.path.iloc[0]
    from PIL import Image
    Image.new('L', (32, 32), 7).save(changed)
    third = prepare_data(cfg.data, progress=False)
    assert opened == [changed] and third.version != first.version

def test_quickstart_and_tutorials_use_the_defaults():
    "The quickstart config, the README's quickstart commands and the tutorials set no speed or accuracy flag: what they show is what a user gets without flags."
    import re, yaml
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    flags = ('data.cache', 'data.imbalance', 'train.precision', 'train.channels_last', 'train.ema', 'train.label_smoothing',
             'train.recipe', 'augment.mixup', 'augment.cutmix', 'augment.progressive')
    qs = yaml.safe_load((root/'configs'/'quickstart.yaml').read_text())
    assert not [k for k in flags if k.split('.')[1] in (qs.get(k.split('.')[0]) or {})], qs
    setting = re.compile(r'(?:' + '|'.join(re.escape(k) for k in flags) + r')=|--(?:no-)?tta\b')   # an override (--set KEY=…, KEY=… in a list), or evaluate's TTA switch
    pages = sorted((root/'nbs'/'tutorials').glob('*.ipynb')) + [root/'nbs'/'index.ipynb']
    def shown(cell):   # what a reader runs: code cells, and the fenced blocks of the prose
        text = ''.join(cell['source'])
        return text if cell['cell_type'] == 'code' else '\n'.join(re.findall(r'```[a-z]*\n(.*?)```', text, re.S))
    found = [(p.name, m.group(0)) for p in pages for c in json.loads(p.read_text())['cells'] for m in setting.finditer(shown(c))]
    assert found == [], found
