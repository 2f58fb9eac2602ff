"""BatchNorm over groups of the batch: shuffle-BN for a single process.

Shuffle-BN only helps when the batch is spread over several BatchNorm groups: a query and its
positive key must be normalised with statistics of different samples, otherwise the network can
tell the current batch's key apart from the queue's older keys by its batch statistics alone
(MoCo's "cheating": high contrastive accuracy, features that learn little). With one process there
is one group, so MoCo's single-GPU recipe (its CIFAR demo) splits each BatchNorm's training batch
into equal groups, as if the batch were spread over that many GPUs, and shuffles the key batch
before the key encoder. `SplitBatchNorm2d` is that BatchNorm. It keeps BatchNorm2d's parameters
and buffers, so checkpoints, the converter and evaluation (which uses the running statistics) see
an ordinary BatchNorm.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SplitBatchNorm2d(nn.BatchNorm2d):
    """In training, sample i of a batch of N is normalised with the statistics of the samples
    j with j % splits == i % splits (N / splits of them); running statistics are the mean of the
    groups' updates. In eval mode it is nn.BatchNorm2d."""

    def __init__(self, num_features: int, splits: int, **kwargs):
        super().__init__(num_features, **kwargs)
        if not (isinstance(splits, int) and splits >= 1):
            raise ValueError(f"splits must be a positive int, got {splits!r}")
        self.splits = splits

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, splits={self.splits}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.splits == 1:
            return super().forward(x)
        n, c = x.shape[0], x.shape[1]
        s = self.splits
        if n % s:
            raise ValueError(
                f"a training batch of {n} does not split into {s} BatchNorm groups; make the batch per "
                f"process a multiple of MODEL.BN_SPLITS={s}"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm2d
                momentum = 1.0 / float(self.num_batches_tracked)
        mean = self.running_mean.repeat(s) if self.track_running_stats else None
        var = self.running_var.repeat(s) if self.track_running_stats else None
        weight = self.weight.repeat(s) if self.affine else None
        bias = self.bias.repeat(s) if self.affine else None
        grouped = x.reshape(n // s, c * s, *x.shape[2:])  # channel block j holds samples i % s == j
        out = F.batch_norm(grouped, mean, var, weight, bias, True, momentum, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.copy_(mean.view(s, c).mean(0))
                self.running_var.copy_(var.view(s, c).mean(0))
        return out.view_as(x)


def split_batchnorm(module: nn.Module, splits: int) -> nn.Module:
    """Replace every nn.BatchNorm2d in `module` (in place) by a SplitBatchNorm2d holding the same
    parameters and buffers; returns `module`. splits=1 leaves it unchanged."""
    if not (isinstance(splits, int) and splits >= 1):
        raise ValueError(f"splits must be a positive int, got {splits!r}")
    if splits == 1:
        return module
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            split = SplitBatchNorm2d(child.num_features, splits, eps=child.eps, momentum=child.momentum,
                                     affine=child.affine, track_running_stats=child.track_running_stats)
            split.train(child.training)
            for key, value in list(child._parameters.items()) + list(child._buffers.items()):
                setattr(split, key, value)
            setattr(module, name, split)
        else:
            split_batchnorm(child, splits)
    return module
