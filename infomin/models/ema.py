"""Momentum (EMA) copy of a network, as in MoCo: p_ema <- m * p_ema + (1 - m) * p.

Only parameters are averaged; BatchNorm running statistics of the copy are its own, estimated
from the key batches it sees in train mode (the reference's behaviour).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


def ema_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy to serve as the momentum network (not trained by the optimizer)."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def momentum_update(online: nn.Module, ema: nn.Module, momentum: float) -> None:
    """Move each parameter of `ema` towards `online`'s: p_ema = m*p_ema + (1-m)*p.

    `momentum=0` copies the online parameters. Raises if the two networks differ in structure.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must lie in [0, 1], got {momentum}")
    online_params = dict(online.named_parameters())
    ema_params = dict(ema.named_parameters())
    if online_params.keys() != ema_params.keys():
        raise ValueError("momentum_update: online and EMA networks have different parameters")
    for name, p_ema in ema_params.items():
        p_ema.lerp_(online_params[name].detach().to(p_ema.dtype), 1.0 - momentum)
