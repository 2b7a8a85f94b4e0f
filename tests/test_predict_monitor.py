"`medtrain predict` (resume after an interruption) and `medtrain monitor` (drift report) through the CLI."
import json, signal, subprocess, sys, time, os
import numpy as np, pandas as pd
from PIL import Image

from conftest import medtrain_inproc as cli_inproc


def test_predict_is_resumable_and_skips_bad_files(trained_run, tmp_path):
    test = pd.read_csv(trained_run/'test.csv')
    (tmp_path/'in').mkdir()
    for i, p in enumerate(test.path): (tmp_path/'in'/f'{i:03d}.png').write_bytes(open(p, 'rb').read())
    (tmp_path/'in'/'zz_truncated.png').write_bytes(open(test.path[0], 'rb').read()[:100])
    out = tmp_path/'preds.csv'
    r = cli_inproc('predict', '--model', trained_run, '--input', tmp_path/'in', '--output', out, '--bs', '4', '--quiet', check=True)
    assert f"{len(test)} predicted, 0 already" in r.stdout and '1 skipped' in r.stdout
    full = pd.read_csv(out)
    assert len(full) == len(test) and set(full.columns[:3]) == {'path', 'pred', 'confidence'}
    assert pd.read_csv(tmp_path/'preds.errors.csv').path.str.endswith('zz_truncated.png').all()
    # an interrupted job leaves a prefix of the rows: the rerun predicts exactly the rest
    lines = out.read_text().splitlines(True)
    out.write_text(''.join(lines[:1 + len(test) // 2]))
    r = cli_inproc('predict', '--model', trained_run, '--input', tmp_path/'in', '--output', out, '--bs', '4', '--quiet', check=True)
    assert f"{len(test) - len(test) // 2} predicted, {len(test) // 2 + 1} already" in r.stdout, r.stdout
    resumed = pd.read_csv(out)
    pd.testing.assert_frame_equal(resumed.sort_values('path').reset_index(drop=True), full.sort_values('path').reset_index(drop=True))
    bad = cli_inproc('predict', '--model', trained_run, '--input', tmp_path/'nowhere', '--output', out)
    assert bad.returncode == 3 and 'no such file or folder' in bad.stderr

def test_monitor_reports_drift_of_shifted_images(trained_run, tmp_path):
    from medtrain.monitor import DRIFT_EXIT_CODE, MIN_WINDOW
    reg = ['--registry', tmp_path/'reg']
    cli_inproc('registry', 'register', trained_run, '--name', 'm', *reg, check=True)
    images = pd.read_csv(trained_run/'splits.csv')      # every image of the run's data: more than MIN_WINDOW
    assert len(images) >= MIN_WINDOW
    (tmp_path/'dark').mkdir()
    for i, p in enumerate(images.path):   # a "new scanner": much darker images
        Image.eval(Image.open(p).convert('RGB'), lambda v: v // 4).save(tmp_path/'dark'/f'{i}.png')
    r = cli_inproc('monitor', '--model', 'm@1', '--input', tmp_path/'dark', '--out', tmp_path/'drift', '--quiet', *reg)
    assert r.returncode == DRIFT_EXIT_CODE != 0 and 'drift found (intensity_psi' in r.stderr, (r.stdout, r.stderr)
    report = json.loads((tmp_path/'drift'/'drift.json').read_text())
    assert report['verdict']['intensity_psi'] == 'drift' and report['scores']['intensity_psi'] > 0.25, report['scores']
    assert report['drift'] and report['p_values']['intensity_ks_p'] < 1e-6
    assert (tmp_path/'drift'/'report.html').exists() and (tmp_path/'drift'/'drift.png').stat().st_size > 10_000
    same = cli_inproc('monitor', '--model', 'm@1', '--input', trained_run/'splits.csv', '--out', tmp_path/'same', '--quiet', *reg)
    report = json.loads((tmp_path/'same'/'drift.json').read_text())
    assert same.returncode == 0 and not report['drift'], (same.stdout, same.stderr)
    assert report['verdict']['intensity_psi'] == 'stable', same.stdout
    few = cli_inproc('monitor', '--model', 'm@1', '--input', trained_run/'test.csv', '--out', tmp_path/'few', '--quiet', *reg)
    assert few.returncode == 3 and f'needs at least {MIN_WINDOW}' in few.stderr
    import contextlib, io, pytest
    from medtrain.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit): main(['monitor', '--help'])
    assert f'{DRIFT_EXIT_CODE} drift found' in ' '.join(buf.getvalue().split())   # the code is documented where users look


def _window(rng, n, darker=0., favour=None):
    "A stand-in for served traffic: images whose brightness drives a 7-class model's logits, as a real model's would."
    b = np.clip(rng.uniform(.25, .75, n) - darker, 0, 1)
    x = np.clip(b[:, None, None, None] + rng.normal(0, .1, (n, 3, 16, 16)), 0, 1)
    feats = np.stack([b, x.std((1, 2, 3)), rng.normal(size=n), rng.normal(size=n)], 1)
    logits = feats @ _W * 2 + rng.normal(0, 1, (n, 7)) + np.log([.4, .2, .1, .1, .1, .05, .05])
    if favour is not None: logits[:, favour] += 3     # the class mix of the patients changed
    return ((x - .5) / .25).astype(np.float32), logits

_W = np.random.default_rng(1).normal(size=(4, 7))

def test_served_drift_gauge_has_few_false_alarms_and_catches_real_shifts():
    "The serving side (`DriftMonitor`, what /metrics shows): 86 % of stable 20-image windows used to read as drift."
    from medtrain.monitor import DriftMonitor, MIN_WINDOW, ALPHA, summarize, intensity_hist, verdict, drift_scores
    rng = np.random.default_rng(0)
    meta = dict(mean=[.5] * 3, std=[.25] * 3, classes=list('abcdefg'))
    x, logits = _window(rng, 256)
    ref = summarize(intensity_hist(x, meta), logits, 7)          # what registration stores
    small = DriftMonitor(ref, meta); small.update(*_window(rng, 20))
    assert small.scores() == {}                                    # 20 images: nothing is scored yet
    def alarms(n_windows, **shift):
        out = []
        for _ in range(n_windows):
            mon = DriftMonitor(ref, meta, window=MIN_WINDOW); mon.update(*_window(rng, MIN_WINDOW, **shift))
            out.append(mon.scores()['drift'])
        return np.mean(out)
    stable = alarms(300)
    assert stable <= 3 * ALPHA + 0.02, stable                      # three tests at ALPHA each, plus sampling noise
    assert alarms(30, darker=.2) == 1                              # a darker scanner: every window says drift
    assert alarms(30, favour=5) >= .9                              # a rare class now predicted often
    # what PSI alone says of the same stable windows (the old rule): far more alarms than the tests allow
    psi_only = np.mean(['drift' in verdict(drift_scores(ref, summarize(intensity_hist(a, meta), b, 7))).values()
                        for a, b in (_window(rng, MIN_WINDOW) for _ in range(100))])
    assert psi_only > 5 * stable + .05, (psi_only, stable)


def test_predict_and_monitor_read_shards_through_the_offset_index(trained_run, tmp_path, monkeypatch):
    "No member is looked up by name (a scan of the member list each time: quadratic); each shard is opened once."
    import tarfile
    from medtrain.shards import write_shards
    images = pd.read_csv(trained_run/'splits.csv')
    write_shards(images.assign(label=images.label.astype(str)), tmp_path/'shards', shard_size=64, progress=False)
    n_shards = len(list((tmp_path/'shards').glob('*.tar')))
    assert n_shards >= 2
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(tarfile, 'open', lambda *a, **kw: opened.append(a[0] if a else kw.get('name')) or real_open(*a, **kw))
    def no_lookup(self, name): raise AssertionError(f'tar member {name} looked up by name')
    monkeypatch.setattr(tarfile.TarFile, 'getmember', no_lookup)
    r = cli_inproc('predict', '--model', trained_run, '--input', tmp_path/'shards', '--output', tmp_path/'preds.csv', '--quiet', check=True)
    assert f'{len(images)} predicted' in r.stdout and '0 skipped' in r.stdout, r.stdout
    preds = pd.read_csv(tmp_path/'preds.csv')
    assert len(preds) == len(images) and preds.path.str.contains(r'shard-\d+\.tar::\d+\.png').all()
    reg = ['--registry', tmp_path/'reg']
    cli_inproc('registry', 'register', trained_run, '--name', 'm', *reg, check=True)
    r = cli_inproc('monitor', '--model', 'm@1', '--input', tmp_path/'shards', '--out', tmp_path/'drift', '--quiet', *reg)
    assert r.returncode == 0 and json.loads((tmp_path/'drift'/'drift.json').read_text())['n_images'] == len(images), r.stderr
    assert len(opened) <= n_shards, opened               # one pass per shard for the whole process (the offset table is cached)
