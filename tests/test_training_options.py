"Training options from the config compose in one real run, and a divergence stops with a clear message."
import json, os
from pathlib import Path
import pandas as pd

HERE = Path(__file__).parent

def test_options_compose(cli, tmp_path, tiny_sets):
    opts = ['augment.mixup=0.4', 'train.loss=focal', 'train.loss_kwargs={gamma: 1.5}', 'train.accumulate=2',
            'train.clip=1.0', 'train.schedule=cosine', 'train.opt=sgd', 'train.epochs=4',
            'train.early_stopping={monitor: valid_loss, patience: 1}', 'train.precision=bf16', 'train.ema=0.9',
            'augment.progressive={sizes: [24, 32], epochs: [2, 2]}']
    r = cli('train', *tiny_sets, *[a for o in opts for a in ('--set', o)], '--run-dir', tmp_path/'run', '--quiet', check=True)
    hist = pd.read_csv(tmp_path/'run'/'history.csv')
    assert 1 <= len(hist) <= 4 and hist.train_loss.notna().all()
    info = json.loads((tmp_path/'run'/'run.json').read_text())
    assert info['status'] == 'finished' and info['epochs'] == len(hist)
    assert (tmp_path/'run'/'model'/'model.safetensors').exists()

def test_divergence_stops_with_a_message(cli, tmp_path, tiny_sets):
    env = {'PYTHONPATH': f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = cli('train', *tiny_sets, '--set', 'train.loss=plugins:NanAfter', '--set', 'train.loss_kwargs={n: 7}',
            '--run-dir', tmp_path/'run', '--quiet', env=env)
    assert r.returncode == 4, r.stderr
    # 160 images → ~112 train at bs 32 = 4 batches an epoch (drop_last): call 7 is epoch 2, batch 3
    assert r.stderr.strip().splitlines()[-1].startswith('medtrain: error: training diverged: loss is nan at epoch 2, batch 3'), r.stderr
    info = json.loads((tmp_path/'run'/'run.json').read_text())
    assert info['status'] == 'failed' and 'diverged' in info['error']
    assert (tmp_path/'run'/'checkpoints'/'best.pth').exists()      # epoch 1's checkpoint survives

def test_unknown_loss_exits_2(cli, tmp_path, tiny_sets):
    r = cli('train', *tiny_sets, '--set', 'train.loss=focall', '--run-dir', tmp_path/'run')
    assert r.returncode == 2 and "did you mean 'focal'" in r.stderr

def test_out_of_memory_recovery_keeps_the_run(cli, tmp_path, tiny_sets):
    "An (injected) out-of-memory error on batches above 8: the run halves its micro-batch twice and finishes."
    r = cli('train', *tiny_sets, '--set', 'train.callbacks=[medtrain.oom:InjectOOM]', '--run-dir', tmp_path/'run', check=True)
    assert 'out of memory at epoch 1, batch 1: micro-batch 32 → 16' in r.stdout
    assert 'micro-batch 16 → 8, 4 micro-batches per step (effective batch 32 unchanged)' in r.stdout
    info = json.loads((tmp_path/'run'/'run.json').read_text())
    assert info['status'] == 'finished'
    assert [e['micro_batch'] for e in info['oom_recoveries']] == [16, 8]
    assert len(pd.read_csv(tmp_path/'run'/'history.csv')) == 2

def test_class_balanced_loss_and_label_smoothing_train(cli, tmp_path, tiny_sets):
    cli('train', *tiny_sets, '--set', 'train.loss=class_balanced', '--set', 'train.loss_kwargs={beta: 0.99}',
        '--set', 'train.label_smoothing=0.1', '--run-dir', tmp_path/'run', '--quiet', check=True)
    assert json.loads((tmp_path/'run'/'run.json').read_text())['status'] == 'finished'

def test_lr_find_saves_its_plot(cli, tmp_path, tiny_sets):
    r = cli('lr-find', *tiny_sets, '--out', tmp_path/'lrf', check=True)
    assert 'lr-find: valley' in r.stdout
    rec = json.loads((tmp_path/'lrf'/'lr_find.json').read_text())
    assert 0 < rec['valley'] < 10 and len(rec['lrs']) == len(rec['losses']) > 10
    assert (tmp_path/'lrf'/'lr_find.png').stat().st_size > 5000

def test_registered_loss_and_schedule_train_from_the_cli(tmp_path, tiny_sets):
    "A loss and a schedule registered in their tables are accepted by `medtrain train --set` with no edit of config or CLI."
    from conftest import medtrain_inproc
    from medtrain.losses import register_loss, LOSSES
    from medtrain.callbacks import register_schedule, SCHEDULES
    used = {'loss': 0, 'schedule': 0}
    def counted_ce(weight=None, label_smoothing=0.):
        ce = LOSSES.get('cross_entropy')(weight=weight, label_smoothing=label_smoothing)
        def loss(pred, *y): used['loss'] += 1; return ce(pred, *y)
        loss.activation, loss.decodes, loss.y_int = ce.activation, ce.decodes, True
        return loss
    def halved_constant(learn, epochs, lr, cbs):
        used['schedule'] += 1; return learn.fit(epochs, lr / 2, cbs=cbs)
    register_loss('test_counted_ce')(counted_ce); register_schedule('test_halved_constant')(halved_constant)
    try:
        r = medtrain_inproc('train', *tiny_sets, '--set', 'train.epochs=1', '--set', 'model.arch=medcnn_small',
                            '--set', 'train.loss=test_counted_ce', '--set', 'train.schedule=test_halved_constant',
                            '--run-dir', tmp_path/'run', '--quiet')
        assert r.returncode == 0, r.stderr
        assert used['loss'] > 0 and used['schedule'] == 1
        assert (tmp_path/'run'/'model').is_dir()
        r = medtrain_inproc('train', *tiny_sets, '--set', 'train.schedule=test_halved_constan', '--run-dir', tmp_path/'run2')
        assert r.returncode == 2 and "train.schedule: unknown schedule 'test_halved_constan'; did you mean 'test_halved_constant'" in r.stderr, r.stderr
        assert not (tmp_path/'run2').exists()   # refused before any work: no run dir
    finally:
        LOSSES._items.pop('test_counted_ce', None); SCHEDULES._items.pop('test_halved_constant', None)

from fastai.callback.core import Callback

class NotInRangeTest(Callback):
    "A user callback (train.callbacks) that says itself the learning-rate range test must leave it out."
    in_lr_find = False
    def before_fit(self): raise AssertionError("lr_find ran a callback marked in_lr_find = False")

def test_lr_find_leaves_out_the_callbacks_that_say_so(tmp_path):
    "lr_find drops callbacks by their own flag, not by class name: a user callback can opt out, as EMA and early stopping do."
    from conftest import TINY
    from medtrain.config import load_config
    from medtrain.train import lr_find
    cfg = load_config(overrides=TINY + [f'data.path={tmp_path}/data', 'model.arch=medcnn_small', 'train.ema=0.9',
                                        'train.early_stopping.patience=1', 'train.callbacks=[test_training_options:NotInRangeTest]'], environ={})
    sug = lr_find(cfg, tmp_path/'lrf', progress=False)
    assert sug['valley'] > 0 and (tmp_path/'lrf'/'lr_find.png').exists()
