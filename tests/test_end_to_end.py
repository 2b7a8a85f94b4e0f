"train → evaluate through the real CLI on a tiny synthetic set, and same-seed reproducibility on CPU."
import json
import pandas as pd

def _train(cli, sets, run_dir):
    r = cli('train', *sets, '--run-dir', run_dir, '--quiet', check=True)
    assert f"run dir: {run_dir}" in r.stdout
    return json.loads((run_dir/'metrics.json').read_text())

def test_train_then_evaluate(cli, tmp_path, tiny_sets):
    run = tmp_path/'run'
    val = _train(cli, tiny_sets, run)
    for f in ('config.yaml', 'run.json', 'history.csv', 'plots/loss.png', 'plots/confusion_matrix.png',
              'model/model.safetensors', 'model/model.json', 'checkpoints/best.pth', 'test.csv'):
        assert (run/f).exists(), f
    assert len(pd.read_csv(run/'history.csv')) == 2
    assert json.loads((run/'run.json').read_text())['status'] == 'finished'
    assert 0 <= val['macro_f1'] <= 1 and val['n'] > 0
    cli('evaluate', '--model-path', run/'model', '--test-data', run/'test.csv', '--out', tmp_path/'eval', '--quiet', check=True)
    m = json.loads((tmp_path/'eval'/'metrics.json').read_text())
    for k in ('accuracy', 'balanced_accuracy', 'macro_f1', 'roc_auc', 'confusion_matrix', 'per_class'):
        assert k in m, k
    test = pd.read_csv(run/'test.csv')
    assert m['n'] == len(test) and sum(map(sum, m['confusion_matrix'])) == len(test)
    assert set(m['per_class']) == set(json.loads((run/'model'/'model.json').read_text())['classes'])
    assert (tmp_path/'eval'/'report.html').stat().st_size > 1000

def test_evaluate_on_a_class_folder(cli, tmp_path, tiny_sets):
    run = tmp_path/'run'
    _train(cli, tiny_sets, run)
    test = pd.read_csv(run/'test.csv')
    for i, (p, lbl) in enumerate(zip(test.path, test.label)):
        (tmp_path/'folder'/lbl).mkdir(parents=True, exist_ok=True)
        (tmp_path/'folder'/lbl/f'{i}.png').write_bytes(open(p, 'rb').read())
    cli('evaluate', '--model-path', run/'model', '--test-data', tmp_path/'folder', '--out', tmp_path/'e2', '--quiet', check=True)
    a = json.loads((tmp_path/'e2'/'metrics.json').read_text())
    assert a['n'] == len(test)

def test_same_seed_same_metrics(cli, tmp_path, tiny_sets):
    a = _train(cli, tiny_sets, tmp_path/'a')
    b = _train(cli, tiny_sets, tmp_path/'b')
    assert a == b
    c = _train(cli, tiny_sets + ['--set', 'train.seed=7'], tmp_path/'c')
    assert (tmp_path/'a'/'metrics.json').read_text() == (tmp_path/'b'/'metrics.json').read_text()
    assert pd.read_csv(tmp_path/'a'/'history.csv').train_loss.tolist() != pd.read_csv(tmp_path/'c'/'history.csv').train_loss.tolist()
