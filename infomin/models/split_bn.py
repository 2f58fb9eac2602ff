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

`resolve_bn_splits` is the one place where `bn_splits="auto"` (the queue methods' default) becomes
a number: PyContrast trains with a global batch of 256 on 8 GPUs, so each BatchNorm sees 32
images; "auto" gives every process's batch as many BatchNorm groups of (at least) 32 images as
divide it evenly, whatever the number of processes.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


# images per BatchNorm batch in the reference (global batch 256 over 8 GPUs, PyContrast docs/RUN.md)
BN_GROUP_SIZE = 32


def resolve_bn_splits(value, batch_per_process: int | None = None, group_size: int = BN_GROUP_SIZE) -> int:
    """The number of BatchNorm groups for `bn_splits=value`: an int is kept as given; "auto" is
    the largest S such that S divides the per-process batch B and B / S >= group_size, i.e. equal
    groups of 32 images where 32 divides B (256 -> 8, 128 -> 4, 32 -> 1), else the most equal
    groups of more than 32 (80 -> 2 groups of 40, 48 -> 1 of 48), and 1 group (the whole batch)
    when B < 2 * group_size or when the batch is not known (None)."""
    if value != "auto":
        return value
    if batch_per_process is None:
        return 1
    if not (isinstance(batch_per_process, int) and batch_per_process >= 1):
        raise ValueError(f"batch_per_process must be a positive int, got {batch_per_process!r}")
    most = batch_per_process // group_size
    return max((s for s in range(1, most + 1) if batch_per_process % s == 0), default=1)


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
