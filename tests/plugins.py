"Objects the tests load by import path from the config (`train.loss: plugins:NanAfter`, `train.callbacks: [plugins:SlowBatches]`)."
import torch
from torch import nn
import torch.nn.functional as F

class NanAfter(nn.Module):
    "Cross-entropy that turns NaN at the n-th training call: a divergence on demand."
    y_int = True
    def __init__(self, n: int = 5, reduction: str = 'mean'):
        super().__init__(); self.n, self.calls, self.reduction = n, 0, reduction
    def forward(self, pred, targ):
        loss = F.cross_entropy(pred, targ.view(-1), reduction=self.reduction)
        if self.training: self.calls += 1
        return loss * float('nan') if self.calls >= self.n else loss
    def activation(self, x): return F.softmax(x, -1)
    def decodes(self, x): return x.argmax(-1)

import time
from fastai.callback.core import Callback

class SlowBatches(Callback):
    "Sleep after each training batch, so that a test can kill the process in the middle of an epoch."
    def __init__(self, seconds: float = 0.4): self.seconds = seconds
    def after_batch(self):
        if self.training: time.sleep(self.seconds)

import json, os
from pathlib import Path

class SampleLog(Callback):
    "Record a checksum and the label of every training sample of the first epoch, per rank (to check how ranks split the data)."
    def before_fit(self): self.sums, self.labels = [], []
    def before_batch(self):
        if self.training and self.epoch == 0:
            self.sums += [round(float(s), 3) for s in self.xb[0].float().flatten(1).sum(1)]
            self.labels += [self.dls.vocab[int(i)] for i in self.yb[0].flatten()]
    def after_fit(self):
        rank = int(os.environ.get('RANK', '0'))
        (Path(self.learn.path)/f'samples_rank{rank}.json').write_text(json.dumps(self.sums))
        (Path(self.learn.path)/f'labels_rank{rank}.json').write_text(json.dumps(self.labels))
