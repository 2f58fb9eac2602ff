"""Under autocast the contrastive logits, the softmax and the loss stay float32.

Autocast runs matrix products in bf16/fp16 even when their inputs are float32, so a cast alone
does not keep the logits in float32. Oracle: the logits recomputed in float64, outside autocast,
from the very embeddings and negatives the logit function received during a real forward under
CPU bf16 autocast (a bf16 product is off by ~1e-2 at these temperatures; float32 by ~1e-6).
The logits are captured where the loss function receives them (the methods' calls are wrapped).
"""
import pytest
import torch
import torch.nn.functional as F

import infomin.methods.bank as bank_module
import infomin.methods.base as base_module
import infomin.methods.moco as moco_module
from infomin.losses import contrastive_logits, info_nce_from_logits
from infomin.methods import build_method

from _methods_helpers import tiny_batch, tiny_kwargs

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _oracle_logits(q, k, negatives, temperature):
    q, k, negatives = q.double(), k.double(), negatives.double()
    positive = (q * k).sum(1, keepdim=True)
    if negatives.dim() == 2:
        negative = q @ negatives.t()
    else:
        negative = torch.einsum("bd,bkd->bk", q, negatives)
    return torch.cat([positive, negative], 1) / temperature


def _oracle_loss(logits):
    return F.cross_entropy(logits.double(), torch.zeros(logits.shape[0], dtype=torch.long))


@pytest.fixture
def recorded(monkeypatch):
    """Wrap the logit function where the methods call it, and the loss function where it is called."""
    logit_calls, loss_calls = [], []
    for module in (moco_module, bank_module):
        real = module.contrastive_logits

        def logits(q, k, negatives, temperature, real=real):
            out = real(q, k, negatives, temperature)
            logit_calls.append((q.detach(), k.detach(), negatives.detach(), temperature, out))
            return out

        monkeypatch.setattr(module, "contrastive_logits", logits)
    real_loss = base_module.info_nce_from_logits

    def loss(logits):
        out = real_loss(logits)
        loss_calls.append((logits, out))
        return out

    monkeypatch.setattr(base_module, "info_nce_from_logits", loss)
    return logit_calls, loss_calls


# (method, logits per forward): InfoMin 1 main + 1 jigsaw; PIRL the same against the bank;
# CMC v2 two cross-modal terms
@pytest.mark.parametrize("name, terms", [("InfoMin", 2), ("PIRL", 2), ("CMCv2", 2)])
def test_logits_and_loss_are_float32_under_bf16_autocast(name, terms, recorded):
    torch.manual_seed(0)
    extra = {"jigsaw": True} if name != "CMCv2" else {}
    method = build_method(name, **tiny_kwargs(name), **extra).train()
    batch = tiny_batch(batch_size=4)
    with torch.autocast(**BF16):
        out = method(batch)
        conv = method.encoder.l.conv1 if name == "CMCv2" else method.encoder.conv1
        assert conv(torch.zeros(1, conv.in_channels, 8, 8)).dtype == torch.bfloat16  # autocast is on
    logit_calls, loss_calls = recorded
    assert len(logit_calls) == terms and len(loss_calls) == terms
    produced = [call[-1] for call in logit_calls]
    for logits, loss in loss_calls:
        assert any(logits is p for p in produced)  # the loss got the logits as computed
        assert logits.dtype == torch.float32 and loss.dtype == torch.float32
        assert abs(loss.item() - _oracle_loss(logits).item()) < 1e-5
    for q, k, negatives, t, logits in logit_calls:
        # the embeddings and memories are float32 too (the heads normalise in float32)
        assert q.dtype == k.dtype == negatives.dtype == torch.float32
        assert (logits.double() - _oracle_logits(q, k, negatives, t)).abs().max().item() < 1e-5
    assert out["loss"].dtype == torch.float32


@pytest.mark.parametrize("negatives_shape", [(16, 8), (4, 16, 8)])  # queue; per-sample bank draws
def test_half_precision_inputs_still_give_float32_logits_and_loss(negatives_shape):
    g = torch.Generator().manual_seed(1)
    q, k = (F.normalize(torch.randn(4, 8, generator=g), dim=1).bfloat16() for _ in range(2))
    negatives = F.normalize(torch.randn(*negatives_shape, generator=g), dim=-1).bfloat16()
    with torch.autocast(**BF16):
        logits = contrastive_logits(q, k, negatives, 0.07)
        loss = info_nce_from_logits(logits)
        loss_from_bf16 = info_nce_from_logits(logits.bfloat16())
    assert logits.dtype == loss.dtype == loss_from_bf16.dtype == torch.float32
    assert (logits.double() - _oracle_logits(q, k, negatives, 0.07)).abs().max().item() < 1e-5
    assert abs(loss.item() - _oracle_loss(logits).item()) < 1e-5
    assert abs(loss_from_bf16.item() - _oracle_loss(logits.bfloat16()).item()) < 1e-5
