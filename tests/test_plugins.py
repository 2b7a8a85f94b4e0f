"Plug-ins (issue P, item 4): a team's own module named under `plugins:` registers a loss that `medtrain train` then uses by name."
import json, os
from pathlib import Path
from conftest import ROOT, medtrain, tiny_config, as_sets

PLUGIN = '''
import os
from pathlib import Path
from medtrain.losses import register_loss, cross_entropy

@register_loss('lab_ce')
def lab_ce(label_smoothing: float = 0., weight=None):
    "Cross-entropy that leaves a mark in $LAB_MARK: proof that the run used the plug-in's loss."
    Path(os.environ['LAB_MARK']).write_text('used')
    return cross_entropy(label_smoothing, weight)
'''

def test_a_plugin_module_registers_a_loss_that_train_uses(tmp_path):
    (tmp_path/'lab_plugins.py').write_text(PLUGIN)
    env = {'PYTHONPATH': os.pathsep.join([str(ROOT), str(tmp_path)]), 'LAB_MARK': str(tmp_path/'mark')}
    sets = as_sets(tiny_config(tmp_path, 'train.epochs=1', 'plugins=[lab_plugins]', 'train.loss=lab_ce'))
    medtrain('train', *sets, '--run-dir', tmp_path/'run', '--quiet', env=env, check=True)
    assert (tmp_path/'mark').read_text() == 'used'
    assert json.loads((tmp_path/'run'/'run.json').read_text())['status'] == 'finished'
    r = medtrain('train', *as_sets(tiny_config(tmp_path, 'train.loss=lab_ce')), '--run-dir', tmp_path/'run2', env=env)   # without the plug-in
    assert r.returncode == 2 and "unknown loss 'lab_ce'" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = medtrain('train', *as_sets(tiny_config(tmp_path, 'plugins=[lab_plugin]')), '--run-dir', tmp_path/'run3', env=env)   # a typo
    assert r.returncode == 2 and "plugins: cannot import 'lab_plugin'" in r.stderr and not (tmp_path/'run3').exists(), r.stderr
