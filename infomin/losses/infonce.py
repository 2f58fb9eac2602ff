"""Losses as pure functions: InfoNCE (softmax over one positive and K negatives), the InfoMin
mix with the jigsaw branch, and cross-entropy for supervised pretraining.

Logits and losses are computed in float32 even under autocast (the reference's advice: keep
the contrastive softmax out of half precision). Casting the inputs is not enough: autocast would
run the matrix products in bf16/fp16 again, so the logits and the loss are computed with autocast
switched off. Shapes are handled with explicit reshapes, so a batch of one works (PyContrast's
`squeeze()` broke it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def float32_region(tensor: torch.Tensor):
    """A context in which `tensor`'s device computes in its inputs' dtype (autocast off)."""
    return torch.autocast(tensor.device.type, enabled=False)


def contrastive_logits(
    q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """[B, 1 + K] logits: column 0 is <q_i, k_i>/t, then <q_i, n_j>/t for each negative.

    `negatives` is either shared by the batch, [K, d] (a MoCo queue), or per sample,
    [B, K, d] (memory-bank draws).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if q.dim() != 2 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B, d], got {tuple(q.shape)} and {tuple(k.shape)}")
    if not (negatives.dim() == 2 or (negatives.dim() == 3 and negatives.shape[0] == q.shape[0])):
        raise ValueError(f"negatives must be [K, d] or [B, K, d] with B={q.shape[0]}, got {tuple(negatives.shape)}")
    with float32_region(q):
        q, k, negatives = q.float(), k.float(), negatives.float()
        positive = (q * k).sum(dim=1, keepdim=True)
        if negatives.dim() == 2:
            negative = q @ negatives.t()
        else:
            negative = torch.bmm(negatives, q.unsqueeze(2)).reshape(q.shape[0], -1)
        return torch.cat([positive, negative], dim=1) / temperature


def info_nce(
    q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean over the batch of -log( exp(q.k/t) / (exp(q.k/t) + sum_j exp(q.n_j/t)) )."""
    return info_nce_from_logits(contrastive_logits(q, k, negatives, temperature))


def info_nce_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the positive in column 0 (softmax and loss in float32)."""
    with float32_region(logits):
        logits = logits.float()
        return F.cross_entropy(logits, logits.new_zeros(logits.shape[0], dtype=torch.long))


def mix_jigsaw(loss: torch.Tensor, loss_jigsaw: torch.Tensor, beta: float) -> torch.Tensor:
    """InfoMin/PIRL combination (1 - beta) * L(q, k) + beta * L(q_jig, k)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta (jigsaw loss weight) must lie in [0, 1], got {beta}")
    return (1.0 - beta) * loss + beta * loss_jigsaw


def infomin_loss(
    q: torch.Tensor,
    q_jigsaw: torch.Tensor,
    k: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float,
    beta: float = 0.5,
) -> torch.Tensor:
    """(1 - beta) * InfoNCE(q, k) + beta * InfoNCE(q_jig, k): same key, negatives and temperature."""
    return mix_jigsaw(
        info_nce(q, k, negatives, temperature), info_nce(q_jigsaw, k, negatives, temperature), beta
    )


def top1_accuracy(logits: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of rows whose argmax is `target` (column 0, the positive, by default); detached."""
    with torch.no_grad():
        pred = logits.argmax(dim=1)
        if target is None:
            target = torch.zeros_like(pred)
        return (pred == target).float().mean()


def supervised_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on class labels (the supervised baseline), computed in float32."""
    with float32_region(logits):
        return F.cross_entropy(logits.float(), labels)
