"Decisions ship with the model: what `evaluate --calibrate --target-sensitivity` chose on validation is what predict and serve apply."
import json
import numpy as np, pandas as pd
from conftest import as_sets, tiny_config, medtrain_inproc as cli_inproc

def test_evaluated_decision_is_served(cli, tmp_path):
    cli('train', *as_sets(tiny_config(tmp_path, 'train.epochs=1', 'model.arch=medcnn_small', 'data.synthetic.n_classes=2',
                                      'data.synthetic.majority=0.5', 'data.synthetic.n_images=200')), '--run-dir', tmp_path/'run', '--quiet', check=True)
    model = tmp_path/'run'/'model'
    trained = json.loads((model/'model.json').read_text())['decision']
    assert trained['source'].startswith('train') and 0 <= trained['threshold'] <= 1     # a binary run ships a threshold from validation
    classes = json.loads((model/'model.json').read_text())['classes']
    cli_inproc('evaluate', '--model-path', model, '--test-data', tmp_path/'run'/'test.csv', '--out', tmp_path/'ev', '--calibrate',
               '--target-sensitivity', '0.95', '--positive-class', classes[0], '--quiet', check=True)
    reported = json.loads((tmp_path/'ev'/'metrics.json').read_text())['operating_point']['picked']['sensitivity']
    d = json.loads((model/'model.json').read_text())['decision']
    assert (d['positive_class'], d['target'], d['metric']) == (classes[0], 0.95, 'sensitivity') and d['temperature'] > 0
    cli_inproc('predict', '--model', model, '--input', tmp_path/'run'/'test.csv', '--output', tmp_path/'pred.csv', '--backend', 'torch',
               '--quiet', check=True)
    pred, test = pd.read_csv(tmp_path/'pred.csv'), pd.read_csv(tmp_path/'run'/'test.csv')
    label = dict(zip(test.path.map(lambda p: str(p if p.startswith('/') else tmp_path/'run'/p)), test.label))
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
