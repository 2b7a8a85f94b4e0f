"Text modality end to end through the CLI: train (tokenizer → language model → classifier) → evaluate → registry → serve JSON → predict."
import json, os
from pathlib import Path
import httpx, pandas as pd, pytest, yaml
from conftest import ROOT, medtrain, medtrain_inproc
from test_serve import _serving

POS = ['nzuri', 'safi', 'bora', 'asante', 'furaha', 'vizuri']
NEG = ['mbaya', 'chafu', 'hasira', 'uchungu', 'vibaya', 'kero']
FILL = ['huduma', 'ya', 'daktari', 'leo', 'hospitali', 'dawa', 'sana', 'ilikuwa', 'na', 'wauguzi']

def _corpus(n=120, seed=0):
    "Swahili-like feedback whose sentiment is carried by a few words (a tiny model can learn it in two epochs)."
    import random
    rng, rows = random.Random(seed), []
    for i in range(n):
        label = ('positive', 'negative')[i % 2]
        words = rng.sample(FILL, 4) + rng.sample(POS if label == 'positive' else NEG, 2)
        rng.shuffle(words); rows.append((' '.join(words).capitalize(), label))
    return pd.DataFrame(rows, columns=['tweet', 'sentiment'])

def _config(d: Path, **model) -> Path:
    _corpus().to_csv(d/'feedback.tsv', sep='\t', index=False)
    (d/'more.txt').write_text('\n'.join(' '.join(FILL[i:] + FILL[:i]) for i in range(len(FILL))))
    cfg = dict(data=dict(modality='text', source='csv', path=str(d/'feedback.tsv'), text_column='tweet', label_column='sentiment',
                         unlabelled=[str(d/'more.txt')], valid_pct=0.2, test_pct=0.2),
               model=dict(arch='awd_lstm_tiny', **model), train=dict(epochs=2, lm_epochs=1, bs=16, lr=1e-2, device='cpu'))
    (d/'text.yaml').write_text(yaml.safe_dump(cfg))
    return d/'text.yaml'

def test_text_train_evaluate_registry_serve_predict(tmp_path):
    cfg = _config(tmp_path)
    r = medtrain_inproc('train', '--config', cfg, '--run-dir', tmp_path/'run', '--quiet', check=True)
    run = tmp_path/'run'
    meta = json.loads((run/'model'/'model.json').read_text())
    assert meta['modality'] == 'text' and meta['classes'] == ['negative', 'positive'] and (run/'lm'/'encoder.safetensors').exists()
    assert json.loads((run/'lm'/'lm.json').read_text())['n_texts'] > 0.6 * 120   # LM read train + valid + the unlabelled file

    r = medtrain_inproc('evaluate', '--model-path', run/'model', '--calibrate', '--n-boot', '200', '--quiet', check=True)   # the run's own test split
    m = json.loads((run/'test'/'metrics.json').read_text())
    assert set(m['per_class']) == {'negative', 'positive'} and m['n'] == 24 and (run/'test'/'confusion_matrix.png').exists()
    assert m['ci95']['macro_f1'][0] <= m['macro_f1'] <= m['ci95']['macro_f1'][1]   # bootstrap CIs, as for images
    assert m['calibration']['temperature'] > 0 and (run/'test'/'reliability_calibrated.png').exists()   # fitted on the run's valid split
    worst = pd.read_csv(run/'test'/'worst_errors.csv')
    assert list(worst.columns) == ['text', 'label', 'predicted', 'confidence']   # errors shown as text

    # the papermill evaluation report: the same numbers, CIs and the worst errors as text
    medtrain('report', run, '--out', tmp_path/'reports', '--quiet', env={'PYTHONPATH': str(ROOT)}, check=True)
    page = (tmp_path/'reports'/'run-evaluate.html').read_text()
    assert 'Most confident errors' in page and 'CI low' in page and 'Temperature' in page

    r = medtrain_inproc('export', run/'model')
    assert r.returncode == 2 and 'text model' in r.stderr and 'model.safetensors' in r.stderr and 'Traceback' not in r.stderr   # refused, naming the supported format
    reg = tmp_path/'registry'
    medtrain_inproc('registry', 'register', run, '--name', 'feedback', '--registry', reg, check=True)
    medtrain_inproc('registry', 'promote', 'feedback', '1', '--registry', reg, check=True)
    assert (reg/'feedback'/'v1'/'model'/'spm.model').exists()   # the tokenizer travels with the model

    (tmp_path/'key').write_text('k3y\n')
    with _serving(tmp_path, 'text', ['--model-path', 'feedback@production', '--registry', str(reg), '--api-key-file', str(tmp_path/'key')]) as (url, log):
        assert httpx.post(url + '/predict', json={'text': 'huduma nzuri'}).status_code == 401
        h = {'Authorization': 'Bearer k3y'}
        one = httpx.post(url + '/predict', json={'text': 'Huduma nzuri sana, asante'}, headers=h)
        assert one.status_code == 200, one.text
        body = one.json()
        assert set(body['probabilities']) == {'negative', 'positive'} and body['model']['name'] == 'feedback'
        batch = httpx.post(url + '/predict/batch', json={'texts': ['dawa mbaya', 'daktari bora', '']}, headers=h).json()
        assert batch['n_ok'] == 2 and len(batch['results']) == 3 and batch['results'][2]['status'] == 422   # an empty text: an error entry
        assert httpx.post(url + '/predict', json={'text': ''}, headers=h).status_code == 422   # not classified
        assert httpx.post(url + '/predict', json={'texts': 'wrong field'}, headers=h).status_code == 422
        assert httpx.get(url + '/metadata', headers=h).json()['modality'] == 'text'

    (tmp_path/'new.txt').write_text('huduma nzuri sana\nhasira na uchungu\n')

    # the next task in the same language starts from this run's language model (its tokenizer and vocabulary come along)
    medtrain_inproc('train', '--config', cfg, '--set', f'model.pretrained={run}', '--set', 'train.lm_epochs=0', '--set', 'train.epochs=1',
                    '--run-dir', tmp_path/'run2', '--quiet', check=True)
    assert (tmp_path/'run2'/'model'/'vocab.json').read_text() == (run/'lm'/'vocab.json').read_text()
    assert json.loads((tmp_path/'run2'/'model'/'model.json').read_text())['language_model'] == str(run/'lm') and not (tmp_path/'run2'/'lm').exists()
    medtrain_inproc('predict', '--model', 'feedback@production', '--registry', reg, '--input', tmp_path/'new.txt', '--output', tmp_path/'p.csv', '--quiet', check=True)
    p = pd.read_csv(tmp_path/'p.csv')
    assert p.text.tolist() == ['huduma nzuri sana', 'hasira na uchungu'] and {'pred', 'confidence', 'p_positive'} <= set(p.columns)

    # `train --resume` of a text run stopped in its classifier step keeps its language model and finishes the run
    (run/'run.json').write_text(json.dumps(dict(json.loads((run/'run.json').read_text()), status='failed')))
    lm = (run/'lm'/'lm.safetensors').read_bytes()
    r = medtrain_inproc('train', '--resume', run, check=True)
    assert 'keeping the tokenizer and language model' in r.stdout and (run/'lm'/'lm.safetensors').read_bytes() == lm
    assert json.loads((run/'run.json').read_text())['status'] == 'finished'
    assert medtrain_inproc('train', '--resume', run, '--quiet').returncode == 2   # finished: nothing to resume

def test_text_config_errors_name_the_key(tmp_path):
    cfg = _config(tmp_path)
    r = medtrain_inproc('train', '--config', cfg, '--set', 'model.arch=resnet18')
    assert r.returncode == 2 and 'model.arch' in r.stderr and 'Traceback' not in r.stderr
    r = medtrain_inproc('train', '--config', cfg, '--set', 'model.arch=awd_lstm_smal', '--run-dir', tmp_path/'r2')
    assert r.returncode == 2 and "did you mean 'awd_lstm_small'" in r.stderr and not (tmp_path/'r2').exists()
    r = medtrain_inproc('train', '--config', cfg, '--set', 'data.label_column=stars', '--run-dir', tmp_path/'r3')
    assert r.returncode != 0 and "stars" in r.stderr and 'Traceback' not in r.stderr
    for cmd in (['cv', '--out', tmp_path/'cv'], ['tune', '--preset', '--out', tmp_path/'tune'], ['lr-find', '--out', tmp_path/'lr']):
        r = medtrain_inproc(*cmd, '--config', cfg, '--set', 'model.arch=awd_lstm_smal')   # on text data too: the typo named, nothing created
        assert r.returncode == 2 and "did you mean 'awd_lstm_small'" in r.stderr and 'Traceback' not in r.stderr, (cmd, r.stderr)
        assert not cmd[-1].exists()
    r = medtrain_inproc('train', '--config', cfg, '--set', 'data.text_normalize=twet', '--run-dir', tmp_path/'r4')
    assert r.returncode == 2 and "did you mean 'tweet'" in r.stderr and not (tmp_path/'r4').exists()

def test_hf_encoder_saved_locally_trains_and_predicts_offline(tmp_path):
    "model.arch: hf:FOLDER — a tiny BERT written with save_pretrained (what a hub download leaves) is fine-tuned, saved, evaluated and used."
    from transformers import BertConfig, BertModel, BertTokenizerFast
    (tmp_path/'vocab.txt').write_text('\n'.join(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + POS + NEG + FILL))
    enc = tmp_path/'tiny-bert'
    BertTokenizerFast(vocab_file=str(tmp_path/'vocab.txt')).save_pretrained(enc)
    BertModel(BertConfig(vocab_size=5 + len(POS + NEG + FILL), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(enc)
    cfg = _config(tmp_path)
    medtrain_inproc('train', '--config', cfg, '--set', f'model.arch=hf:{enc}', '--set', 'train.lr=1e-3', '--run-dir', tmp_path/'run', '--quiet', check=True)
    meta = json.loads((tmp_path/'run'/'model'/'model.json').read_text())
    assert meta['kind'] == 'hf' and 'hf-tokenizer.json' in meta['files'] and 'hf-config.json' in meta['files']
    medtrain_inproc('evaluate', '--model-path', tmp_path/'run'/'model', '--n-boot', '50', '--quiet', check=True)
    assert json.loads((tmp_path/'run'/'test'/'metrics.json').read_text())['n'] == 24
    (tmp_path/'new.csv').write_text('tweet\nhuduma nzuri\nhasira kero\n')
    medtrain_inproc('predict', '--model', tmp_path/'run', '--input', tmp_path/'new.csv', '--output', tmp_path/'p.csv', '--quiet', check=True)
    assert pd.read_csv(tmp_path/'p.csv').text.tolist() == ['huduma nzuri', 'hasira kero']
    before = (tmp_path/'p.csv').read_bytes()
    r = medtrain_inproc('predict', '--model', tmp_path/'run', '--input', tmp_path/'new.csv', '--output', tmp_path/'p.csv', '--quiet')
    assert r.returncode == 3 and 'already exists' in r.stderr and (tmp_path/'p.csv').read_bytes() == before   # never overwrites

AFRISENTI = Path(__file__).resolve().parents[2]/'shared'/'data'/'afrisenti'

@pytest.mark.skipif(not (AFRISENTI/'hau'/'dev.tsv').exists(), reason="the AfriSenti data (../shared/data/afrisenti) is not here")
def test_afrisenti_tsv_keeps_every_tweet_as_written():
    "Real tweets (some with quote characters): the TSV reader keeps every row and each tweet exactly as written, no quote processing."
    from medtrain.text import read_text_table
    raw = [l.rstrip('\n').split('\t') for l in open(AFRISENTI/'hau'/'dev.tsv', encoding='utf-8')][1:]
    df = read_text_table(AFRISENTI/'hau'/'dev.tsv', 'tweet', 'label')
    assert len(df) == len(raw) == 2677 and sorted(df.label.unique()) == ['negative', 'neutral', 'positive']
    assert df.text.tolist() == [r[0] for r in raw] and sum('"' in t for t in df.text) > 0
