"Exact resume: kill -9 a real training process mid-epoch, resume it, and get the uninterrupted run's results."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd
from conftest import tiny_config, as_sets

HERE = Path(__file__).parent

def _sets(tmp_path, n_images=200):
    return as_sets(tiny_config(tmp_path, f'data.synthetic.n_images={n_images}', 'model.arch=medcnn_small', 'train.epochs=3',
                               'train.bs=16', 'augment.mixup=0.4', 'train.ema=0.9', 'train.checkpoint_every=2',
                               'train.callbacks=[plugins:SlowBatches]'))

def _env(): return {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

def _kill_mid_epoch(run, argv):
    "Start `medtrain train ARGV`, wait for its mid-epoch checkpoint in the second epoch, then SIGKILL it and every process it started."
    import psutil
    proc = subprocess.Popen([sys.executable, '-m', 'medtrain', 'train', *argv], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker, deadline = run/'checkpoints'/'last.json', time.time() + 300
    try:
        while time.time() < deadline:      # wait for a mid-epoch checkpoint in the second epoch
            if marker.exists():
                try: at = json.loads(marker.read_text())
                except ValueError: at = {}
                if at.get('epoch') == 1 and at.get('batches', 0) >= 2: break
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.05)
        else: raise AssertionError("no mid-epoch checkpoint appeared")
        time.sleep(0.5)                       # let it train on past the checkpoint, then kill it without warning
        tree = psutil.Process(proc.pid).children(recursive=True)   # torchrun's workers run in sessions of their own
        for p in [psutil.Process(proc.pid), *tree]: p.kill()        # all at once, as a power cut would
        psutil.wait_procs(tree, timeout=30)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

def test_kill9_mid_epoch_then_resume_equals_uninterrupted(cli, tmp_path):
    cli('train', *_sets(tmp_path), '--run-dir', tmp_path/'ref', '--quiet', env=_env(), check=True)
    run = tmp_path/'crashed'
    _kill_mid_epoch(run, [*_sets(tmp_path), '--run-dir', str(run), '--quiet'])
    assert json.loads((run/'run.json').read_text())['status'] == 'running'      # killed: nothing got to say otherwise
    assert not (run/'metrics.json').exists()
    r = cli('train', '--resume', run, env=_env(), check=True)
    assert 'resuming' in r.stdout and 'epoch 2' in r.stdout
    assert (run/'metrics.json').read_text() == (tmp_path/'ref'/'metrics.json').read_text()
    cols = ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'balanced_accuracy', 'macro_f1']
    pd.testing.assert_frame_equal(pd.read_csv(run/'history.csv')[cols], pd.read_csv(tmp_path/'ref'/'history.csv')[cols])
    assert (run/'model'/'model.safetensors').read_bytes() == (tmp_path/'ref'/'model'/'model.safetensors').read_bytes()
    info = json.loads((run/'run.json').read_text())
    assert info['status'] == 'finished' and info['resumed'] == 1

def test_resume_refuses_a_finished_run_and_extra_options(cli, tmp_path, tiny_sets):
    cli('train', *tiny_sets, '--run-dir', tmp_path/'run', '--quiet', check=True)
    r = cli('train', '--resume', tmp_path/'run')
    assert r.returncode != 0 and 'already finished' in r.stderr
    r = cli('train', '--resume', tmp_path/'run', '--set', 'train.lr=1')
    assert r.returncode == 2 and '--resume' in r.stderr
    r = cli('train', '--resume', tmp_path/'nothing')
    assert r.returncode != 0 and 'not a run dir' in r.stderr

def test_two_process_run_killed_mid_epoch_resumes_exactly(cli, tmp_path):
    "DDP in 2 CPU processes: kill -9 the process tree mid-epoch, resume with --num-processes 2, get the uninterrupted 2-process run's results."
    sets = _sets(tmp_path, n_images=400)   # about 9 batches of 16 per process and epoch: room to kill between checkpoints
    cli('train', '--num-processes', '2', *sets, '--run-dir', tmp_path/'ref', '--quiet', env=_env(), check=True)
    run = tmp_path/'crashed'
    _kill_mid_epoch(run, ['--num-processes', '2', *sets, '--run-dir', str(run), '--quiet'])
    at = json.loads((run/'checkpoints'/'last.json').read_text())
    assert at['epoch'] == 1 and at['batches'] > 0, at
    r = cli('train', '--resume', run, env=_env())             # one process cannot replay a part of a 2-process epoch
    assert r.returncode != 0 and '--num-processes 2' in r.stderr, r.stderr[-2000:]
    r = cli('train', '--resume', run, '--num-processes', '2', '--quiet', env=_env(), check=True)
    assert r.stdout.count('run dir:') == 1                    # rank 0 speaks for both
    assert (run/'metrics.json').read_text() == (tmp_path/'ref'/'metrics.json').read_text()
    cols = ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'balanced_accuracy', 'macro_f1']
    pd.testing.assert_frame_equal(pd.read_csv(run/'history.csv')[cols], pd.read_csv(tmp_path/'ref'/'history.csv')[cols])
    assert (run/'model'/'model.safetensors').read_bytes() == (tmp_path/'ref'/'model'/'model.safetensors').read_bytes()
    info = json.loads((run/'run.json').read_text())
    assert info['status'] == 'finished' and info['resumed'] == 1 and info['processes'] == 2
