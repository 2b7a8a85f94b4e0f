#!/usr/bin/env python
"""AfriSenti (Swahili, Hausa): medtrain's text classifier vs the TF-IDF + logistic-regression peer.

For each language, on the shared task's own splits (train to fit, dev to validate, test to score):

  peer      — char (2–5, word-bounded) + word (1–2) TF-IDF, logistic regression with class_weight='balanced',
              fitted on train (the ten-line baseline a practitioner writes);
  medtrain  — `medtrain.text.train_text`: SentencePiece tokenizer, AWD-LSTM language model, classifier with gradual
              unfreezing; variants: without LM pretraining (lm_epochs 0), with it (train + dev texts), and with the
              test tweets' *text* added as unlabelled LM data (transductive: their labels are never read).

Reports macro-F1 and weighted-F1 on the test split and wall time, and appends the table to benchmarks/RESULTS.md.
The data stay in ../shared/data/afrisenti (CC BY 4.0; cite the AfriSenti papers, see its README): the script writes
one combined TSV per language into a temporary folder, never into the repository.

  python benchmarks/text_afrisenti.py                          # swa and hau, every variant
  python benchmarks/text_afrisenti.py --langs swa --variants lm --epochs 6 --lm-epochs 4
  python benchmarks/text_afrisenti.py --smoke                  # 200 tweets, tiny model (CI)
"""
from __future__ import annotations
import argparse, csv, os, platform, shlex, subprocess, sys, tempfile, time, warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings('ignore')
DATA = ROOT.parent/'shared'/'data'/'afrisenti'

import numpy as np, pandas as pd, torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import FeatureUnion, make_pipeline

def read_split(lang, part, data=DATA) -> pd.DataFrame:
    return pd.read_csv(Path(data)/lang/f'{part}.tsv', sep='\t', quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)

def peer(train, test) -> dict:
    "TF-IDF (char + word) + class-balanced logistic regression, fitted on train, scored on test."
    t = time.time()
    feats = FeatureUnion([('char', TfidfVectorizer(analyzer='char_wb', ngram_range=(2, 5), min_df=2, sublinear_tf=True)),
                          ('word', TfidfVectorizer(analyzer='word', ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True))])
    clf = make_pipeline(feats, LogisticRegression(class_weight='balanced', max_iter=2000, C=2.0))
    clf.fit(train.tweet, train.label)
    pred = clf.predict(test.tweet)
    return dict(macro_f1=f1_score(test.label, pred, average='macro'), weighted_f1=f1_score(test.label, pred, average='weighted'),
                seconds=time.time() - t, pred=np.asarray(pred))

def paired_delta(y, a, b, n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    "Test macro-F1 of predictions `a` minus that of `b`, and its paired-bootstrap 95% interval (the same resampled tweets for both)."
    y, a, b = map(np.asarray, (y, a, b))
    f = lambda ix: f1_score(y[ix], a[ix], average='macro') - f1_score(y[ix], b[ix], average='macro')
    rng = np.random.default_rng(seed)
    boots = [f(rng.integers(0, len(y), len(y))) for _ in range(n)]
    return f(np.arange(len(y))), *np.percentile(boots, [2.5, 97.5])

def medtrain_run(lang, train, dev, test, work, variant, args) -> dict:
    "One `train_text` run on this language (`variant`: nolm, lm, lm+unlabelled), scored on test by the saved model."
    from medtrain.config import Config
    from medtrain.text import train_text, load_text_model
    work = Path(work); work.mkdir(parents=True, exist_ok=True)
    tsv = work/'data.tsv'
    rows = pd.concat([train.assign(split='train'), dev.assign(split='valid'), test.assign(split='test')])[['tweet', 'label', 'split']]
    tsv.write_text('tweet\tlabel\tsplit\n' + ''.join('\t'.join(r) + '\n' for r in rows.itertuples(index=False)))   # as read: no quoting
    unl = []
    if variant == 'lm+unlabelled':
        (work/'unlabelled.txt').write_text('\n'.join(t.replace('\n', ' ') for t in test.tweet))
        unl = [str(work/'unlabelled.txt')]
    cfg = Config.model_validate(dict(
        data=dict(modality='text', source='csv', path=str(tsv), text_column='tweet', label_column='label', unlabelled=unl,
                  imbalance='weighted_loss', text_normalize=args.normalize),
        model=dict(arch=args.arch, drop_mult=args.drop_mult, vocab_sz=args.vocab_sz, ngrams=args.ngrams),
        train=dict(epochs=args.epochs, lm_epochs=0 if variant == 'nolm' else args.lm_epochs, bs=args.bs, lr=args.lr,
                   lm_lr=args.lm_lr, wd=0.1, label_smoothing=args.label_smoothing, progress=not args.quiet, seed=args.seed)))
    t = time.time()
    res = train_text(cfg, work/f'run-{variant.replace("+", "_")}', overwrite=True)
    seconds = time.time() - t
    pred = load_text_model(res.run_dir/'model')
    probs = pred.probs(test.tweet.tolist())
    y = np.array(pred.classes)[probs.argmax(1)]
    return dict(macro_f1=f1_score(test.label, y, average='macro'), weighted_f1=f1_score(test.label, y, average='weighted'),
                seconds=seconds, valid_macro_f1=res.metrics['macro_f1'], pred=y)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--langs', nargs='+', default=['swa', 'hau'])
    ap.add_argument('--variants', nargs='+', default=['nolm', 'lm', 'lm+unlabelled'], choices=['nolm', 'lm', 'lm+unlabelled'])
    ap.add_argument('--arch', default='awd_lstm_small')
    ap.add_argument('--epochs', type=int, default=6)
    ap.add_argument('--lm-epochs', type=int, default=4)
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-2)
    ap.add_argument('--lm-lr', type=float, default=1e-2)
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--drop-mult', type=float, default=None, help="model.drop_mult (None: fastai's 0.3 LM / 0.5 classifier)")
    ap.add_argument('--vocab-sz', type=int, default=None, help="model.vocab_sz (None: fastai's rule)")
    ap.add_argument('--ngrams', type=int, default=0, help='model.ngrams: a bag of hashed subword 1…N-grams beside the AWD-LSTM (0: off)')
    ap.add_argument('--label-smoothing', type=float, default=0.0)
    ap.add_argument('--normalize', default='none', help="data.text_normalize: none, lower, tweet")
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument('--max-train', type=int, default=None, help="use only the first N training tweets")
    ap.add_argument('--work-dir', type=Path, default=None)
    ap.add_argument('--data', type=Path, default=DATA)
    ap.add_argument('--smoke', action='store_true', help="200 tweets, awd_lstm_tiny, 1+1 epochs, swa only; no RESULTS.md")
    ap.add_argument('--no-results', action='store_true', help="do not append to benchmarks/RESULTS.md")
    ap.add_argument('--quiet', action='store_true')
    args = ap.parse_args(argv)
    if args.smoke:
        args.langs, args.arch, args.epochs, args.lm_epochs, args.max_train, args.no_results = ['swa'], 'awd_lstm_tiny', 1, 1, 200, True
        args.variants = ['lm']
    if args.threads: torch.set_num_threads(args.threads)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix='afrisenti-'))
    load = subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()
    rows = []
    for lang in args.langs:
        train, dev, test = (read_split(lang, p, args.data) for p in ('train', 'dev', 'test'))
        if args.max_train:   # a random sample: the files are sorted by label
            cut = lambda d, n: d.sample(min(n, len(d)), random_state=0)
            train, dev, test = cut(train, args.max_train), cut(dev, args.max_train // 4), cut(test, args.max_train // 4)
        r = peer(train, test); peer_pred = r['pred']
        rows.append(dict(lang=lang, model='TF-IDF char+word + balanced LR (peer)', **r))
        print(f"{lang} peer: macro-F1 {r['macro_f1']:.3f}, weighted-F1 {r['weighted_f1']:.3f}, {r['seconds']:.1f}s", flush=True)
        for v in args.variants:
            r = medtrain_run(lang, train, dev, test, work/lang, v, args)
            name = {'nolm': 'medtrain, no LM pretraining', 'lm': 'medtrain, LM on train+dev text',
                    'lm+unlabelled': 'medtrain, LM + test tweets as unlabelled text'}[v]
            r['delta'] = paired_delta(test.label, r['pred'], peer_pred)
            rows.append(dict(lang=lang, model=f'{name} ({args.arch})' + (f', ngrams {args.ngrams}' if args.ngrams else ''), **r))
            d = r['delta']
            print(f"{lang} {v}: macro-F1 {r['macro_f1']:.3f}, weighted-F1 {r['weighted_f1']:.3f}, {r['seconds']:.0f}s; "
                  f"vs peer {d[0]:+.3f} (95% CI {d[1]:+.3f} … {d[2]:+.3f})", flush=True)
    df = pd.DataFrame(rows)
    if 'valid_macro_f1' not in df: df['valid_macro_f1'] = np.nan
    if 'delta' not in df: df['delta'] = None
    ci = lambda d: '' if not isinstance(d, tuple) else f'{d[0]:+.3f} ({d[1]:+.3f} … {d[2]:+.3f})'
    table = ("| language | model | test macro-F1 | test weighted-F1 | dev macro-F1 | time s | test macro-F1 − peer's (paired bootstrap 95% CI) |\n"
             "|---|---|---|---|---|---|---|\n") + "\n".join(
        f"| {r.lang} | {r.model} | {r.macro_f1:.3f} | {r.weighted_f1:.3f} | {'' if np.isnan(r.valid_macro_f1) else f'{r.valid_macro_f1:.3f}'} | {r.seconds:.0f} | {ci(r.delta)} |"
        for r in df.itertuples())
    print(table)
    if args.no_results: return df
    cmd = 'python benchmarks/' + Path(__file__).name + (' ' + shlex.join(argv if argv is not None else sys.argv[1:]) if (argv or sys.argv[1:]) else '')
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    with open(ROOT/'benchmarks'/'RESULTS.md', 'a') as f:
        f.write(f"\n### AfriSenti text classification — medtrain ({args.arch}) vs TF-IDF + logistic regression\n"
                f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {cpu}, {os.cpu_count()} cores, torch threads "
                f"{torch.get_num_threads()}, shared with other engineers' jobs (`uptime` at the start: {load})\n"
                f"- command: `{cmd}`\n- data: AfriSenti-SemEval 2023 (CC BY 4.0), the task's train / dev / test splits"
                + (f" (random samples: {args.max_train} train, {args.max_train // 4} dev, {args.max_train // 4} test tweets)" if args.max_train else "") + "; "
                f"classifier {args.epochs} epochs (gradual unfreezing), LM {args.lm_epochs} epochs, bs {args.bs}, lr {args.lr}, lm_lr {args.lm_lr}, "
                f"drop_mult {args.drop_mult}, vocab_sz {args.vocab_sz}, ngrams {args.ngrams}, label_smoothing {args.label_smoothing}, text_normalize {args.normalize}; time = the whole "
                f"`train_text` run (tokenizer + LM + classifier) or the peer's fit\n\n{table}\n")
    return df

if __name__ == '__main__': main()
