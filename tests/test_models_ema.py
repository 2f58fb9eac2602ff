import pytest
import torch
import torch.nn as nn

from infomin.models import ema_copy, momentum_update


def _net():
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def test_ema_update_formula_on_parameters_only():
    online, ema = _net(), _net()
    with torch.no_grad():
        for p in online.parameters():
            p.fill_(1.0)
        for p in ema.parameters():
            p.fill_(3.0)
        ema[1].running_mean.fill_(7.0)
    momentum_update(online, ema, 0.75)
    for p in ema.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.75 * 3.0 + 0.25 * 1.0))
    assert torch.equal(ema[1].running_mean, torch.full((2,), 7.0))  # buffers are the EMA's own


def test_copy_is_frozen_and_momentum_zero_copies():
    online = _net()
    ema = ema_copy(online)
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        online[0].weight.add_(1.0)
    momentum_update(online, ema, 0.0)
    assert torch.equal(ema[0].weight, online[0].weight)
    with pytest.raises(ValueError, match="momentum"):
        momentum_update(online, ema, 1.5)
    with pytest.raises(ValueError, match="different parameters"):
        momentum_update(online, nn.Linear(2, 2), 0.5)
