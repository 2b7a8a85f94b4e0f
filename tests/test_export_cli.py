"`medtrain export` on a trained run: both formats, the parity record in the sidecar, and the exported files answer like PyTorch."
import json
import numpy as np
from conftest import medtrain_inproc as cli_inproc

def test_export_both_formats_records_parity(trained_run, tmp_path):
    for fmt in ('onnx', 'torchscript'):
        r = cli_inproc('export', trained_run, '--format', fmt, '--out', tmp_path/fmt, check=True)
        assert 'parity max abs probability difference' in r.stdout
        rec = json.loads((tmp_path/fmt/'model.json').read_text())['exports'][fmt]
        assert rec['n_real'] == 8 and max(rec['parity_max_abs_diff'].values()) <= 1e-4 and rec['preprocessing']['resize'] == 'squish'
    import onnxruntime as ort, torch
    from medtrain.models import load_model
    model, meta = load_model(trained_run/'model')
    x = np.random.default_rng(1).standard_normal((3, meta['n_in'], meta['size'], meta['size']), dtype=np.float32)
    with torch.no_grad(): ref = model(torch.from_numpy(x)).numpy()
    onnx = ort.InferenceSession(str(tmp_path/'onnx'/'model.onnx')).run(None, {'input': x})[0]
    ts = torch.jit.load(str(tmp_path/'torchscript'/'model.torchscript.pt'))(torch.from_numpy(x)).detach().numpy()
    assert np.abs(onnx - ref).max() < 1e-4 and np.abs(ts - ref).max() < 1e-4
    bad = cli_inproc('export', 'nosuch@production', '--registry', tmp_path/'reg')
    assert bad.returncode == 2 and "no model named 'nosuch'" in bad.stderr
