"`medtrain predict` (resume after an interruption) and `medtrain monitor` (drift report) through the CLI."
import json, signal, subprocess, sys, time, os
import pandas as pd
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
    reg = ['--registry', tmp_path/'reg']
    cli_inproc('registry', 'register', trained_run, '--name', 'm', *reg, check=True)
    test = pd.read_csv(trained_run/'test.csv')
    (tmp_path/'dark').mkdir()
    for i, p in enumerate(test.path):   # a "new scanner": much darker images
        Image.eval(Image.open(p).convert('RGB'), lambda v: v // 4).save(tmp_path/'dark'/f'{i}.png')
    r = cli_inproc('monitor', '--model', 'm@1', '--input', tmp_path/'dark', '--out', tmp_path/'drift', '--quiet', *reg, check=True)
    report = json.loads((tmp_path/'drift'/'drift.json').read_text())
    assert report['verdict']['intensity_psi'] == 'drift' and report['scores']['intensity_psi'] > 0.25, report['scores']
    assert (tmp_path/'drift'/'report.html').exists() and (tmp_path/'drift'/'drift.png').stat().st_size > 10_000
    same = cli_inproc('monitor', '--model', 'm@1', '--input', trained_run/'test.csv', '--out', tmp_path/'same', '--quiet', *reg, check=True)
    assert json.loads((tmp_path/'same'/'drift.json').read_text())['verdict']['intensity_psi'] == 'stable', same.stdout
