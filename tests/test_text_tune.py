"`medtrain cv`, `tune` and `lr-find` on text data (`data.modality: text`), end to end through the CLI on a tiny corpus."
import json, os
import pandas as pd, yaml
from conftest import medtrain_inproc
from test_text import _config as _text_config, _corpus

def _csv(path): return pd.read_csv(path, keep_default_na=False)

def _config(d):
    "test_text's config on 60 texts (12 test) instead of 120: the same code paths at half the CPU time."
    cfg = _text_config(d)
    _corpus(60).to_csv(d/'feedback.tsv', sep='\t', index=False)
    return cfg

def test_text_cv_folds_share_one_language_model_then_lr_find_on_it(tmp_path):
    cfg = _config(tmp_path)   # 60 labelled texts (12 test), 10 unlabelled lines; awd_lstm_tiny, 1 LM epoch, 2 classifier epochs
    r = medtrain_inproc('cv', '--config', cfg, '--folds', '2', '--ensemble', '--n-boot', '100', '--out', tmp_path/'cv', '--quiet', check=True)
    assert 'mean ± std' in r.stdout and 'ensemble (test)' in r.stdout, r.stdout
    cv = tmp_path/'cv'
    folds, folds_text = _csv(cv/'folds.csv'), (cv/'folds.csv').read_text()
    test, pool = folds[folds.fold < 0], folds[folds.fold >= 0]
    assert len(test) == 12 and sorted(pool.fold.unique()) == [0, 1]
    assert (pool.groupby('fold').label.value_counts() == 12).all()   # stratified: each fold holds 12 of each class (24 + 24)
    oof = _csv(cv/'oof_predictions.csv')
    assert sorted(oof.text) == sorted(pool.text)   # every non-test text predicted once, by the fold model that did not train on it
    for i in range(2):
        s = _csv(cv/f'fold{i}'/'splits.csv')
        assert not set(s.text) & set(test.text)   # a fold run never sees a test text
        assert sorted(s[s.split == 'valid'].text) == sorted(oof[oof.fold == i].text)
        meta = json.loads((cv/f'fold{i}'/'model'/'model.json').read_text())
        assert meta['pretrained'] == str((cv/'lm').resolve()) and not (cv/f'fold{i}'/'lm').exists()   # one LM for all folds
    assert json.loads((cv/'lm'/'lm.json').read_text())['n_texts'] == len(pool) + 10   # unlabelled + non-test texts, as one run's LM
    per_fold = pd.read_csv(cv/'cv_metrics.csv', index_col=0)
    summary = json.loads((cv/'cv.json').read_text())
    for k in ('accuracy', 'macro_f1', 'balanced_accuracy'):
        assert abs(summary['mean'][k] - per_fold.loc[['0', '1'], k].mean()) < 1e-6 and 0 <= summary['mean'][k] <= 1
        assert abs(summary['std'][k] - per_fold.loc[['0', '1'], k].std()) < 1e-6
    ens, ens_metrics = _csv(cv/'ensemble'/'predictions.csv'), json.loads((cv/'ensemble'/'metrics.json').read_text())
    assert ens_metrics['ci95']['macro_f1'][0] <= ens_metrics['macro_f1'] <= ens_metrics['ci95']['macro_f1'][1]   # --n-boot 100 resamples
    assert sorted(ens.text) == sorted(test.text) and ((ens.p_negative + ens.p_positive - 1).abs() < 1e-5).all()

    lm_before = (cv/'lm'/'lm.safetensors').read_bytes()
    r = medtrain_inproc('cv', '--config', cfg, '--folds', '2', '--out', tmp_path/'cv', '--quiet')   # the same --out again
    assert r.returncode == 2 and 'already holds' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert (cv/'lm'/'lm.safetensors').read_bytes() == lm_before and (cv/'folds.csv').read_text() == folds_text   # nothing written over

    r = medtrain_inproc('lr-find', '--config', cfg, '--set', f'model.pretrained={cv/"lm"}', '--set', 'model.arch=awd_lstm_mini', '--out', tmp_path/'lr')
    assert r.returncode == 2 and "model.arch: 'awd_lstm_mini', but the language model" in r.stderr and not (tmp_path/'lr').exists()   # named, not a shape error

    # lr-find on the classifier whose encoder is that language model: a plot and the suggestions, nothing else written
    medtrain_inproc('lr-find', '--config', cfg, '--set', f'model.pretrained={cv/"lm"}', '--set', 'train.bs=4', '--out', tmp_path/'lr', '--quiet', check=True)
    assert sorted(os.listdir(tmp_path/'lr')) == ['lr_find.json', 'lr_find.png']
    found = json.loads((tmp_path/'lr'/'lr_find.json').read_text())
    assert 1e-7 < found['valley'] < 10 and len(found['lrs']) == len(found['losses']) > 10
    assert found['lrs'] == sorted(found['lrs'])   # the range test sweeps the rate upwards

def test_text_tune_two_trials_of_the_text_preset_share_one_language_model(tmp_path):
    cfg = _config(tmp_path)
    space = tmp_path/'space.yaml'
    space.write_text(yaml.safe_dump({'train.epochs': [1], 'model.ngrams': [0, 2]}))   # small values on top of the preset
    r = medtrain_inproc('tune', '--config', cfg, '--preset', '--space', space, '--trials', '2', '--search', 'random', '--seed', '3',
                        '--out', tmp_path/'tune', '--quiet', check=True)
    assert 'best config' in r.stdout, r.stdout
    out = tmp_path/'tune'
    assert sorted(yaml.safe_load((out/'space.yaml').read_text())) == ['model.ngrams', 'train.epochs', 'train.label_smoothing', 'train.lr', 'train.wd']
    assert json.loads((out/'lm'/'lm.json').read_text())['n_texts'] == 48 + 10   # trained once, on the unlabelled and train/valid texts
    trials = pd.read_csv(out/'trials.csv')
    assert len(trials) == 2 and (trials.state == 'COMPLETE').all() and trials.value.between(0, 1).all()
    test_texts = set(pd.read_csv(tmp_path/'feedback.tsv', sep='\t').tweet) - set(_csv(out/'trainval.csv').text)
    assert len(test_texts) == 12   # the test split: never given to a trial
    for _, t in trials.iterrows():
        run = out/'trials'/f"trial-{t.number:03d}"
        assert not set(_csv(run/'splits.csv').text) & test_texts
        meta = json.loads((run/'model'/'model.json').read_text())
        assert meta['ngrams'] == t['params_model.ngrams']   # the trial trained what it drew
        assert meta['pretrained'] == str((out/'lm').resolve()) and not (run/'lm').exists()   # from the shared language model
        assert abs(json.loads((run/'metrics.json').read_text())['macro_f1'] - t.value) < 1e-9
    from medtrain.config import load_config
    best = load_config(out/'best.yaml', environ={})   # ready for `medtrain train --config best.yaml`
    b = json.loads((out/'best.json').read_text())
    assert best.data.modality == 'text' and best.data.path == tmp_path/'feedback.tsv'
    assert best.model.ngrams == b['params']['model.ngrams'] and abs(best.train.wd - b['params']['train.wd']) < 1e-12
    assert best.train.lm_epochs == 1 and not best.model.pretrained and abs(best.train.lm_lr - 5 * 1e-2) < 1e-12   # retrains the LM the trials shared
    assert b['value'] == trials.value.max()

def test_text_tune_image_preset_named_and_nothing_created(tmp_path):
    cfg = _config(tmp_path)
    r = medtrain_inproc('tune', '--config', cfg, '--preset', 'standard', '--out', tmp_path/'tune')
    assert r.returncode == 2 and '--preset standard: does not fit text data' in r.stderr and 'try --preset text' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and not (tmp_path/'tune').exists()
