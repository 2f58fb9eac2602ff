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


def info_nce_from_logits(logits: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy with the positive in column 0, or in column `target[i]` of row i (softmax and
    loss in float32)."""
    with float32_region(logits):
        logits = logits.float()
        if target is None:
            target = logits.new_zeros(logits.shape[0], dtype=torch.long)
        return F.cross_entropy(logits, target)


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


def nt_xent_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float, *,
                   all1: torch.Tensor | None = None, all2: torch.Tensor | None = None,
                   offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCLR's in-batch logits: each of the 2B local embeddings (z1 then z2, [B, d] each) against
    all 2N embeddings of the global batch (all1 then all2, [N, d]; default z1, z2), divided by t.

    Returns ([2B, 2N] logits, [2B] target columns). Each anchor's own column is -inf; its target
    is the other view of the same image. `offset` is the position of this rank's rows in all1/all2.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    all1 = z1 if all1 is None else all1
    all2 = z2 if all2 is None else all2
    if z1.dim() != 2 or z2.shape != z1.shape or all1.shape != all2.shape or all1.shape[1:] != z1.shape[1:]:
        raise ValueError(f"z1, z2 must be [B, d] and all1, all2 [N, d]; got {tuple(z1.shape)}, "
                         f"{tuple(z2.shape)}, {tuple(all1.shape)}, {tuple(all2.shape)}")
    b, n = z1.shape[0], all1.shape[0]
    if not 0 <= offset <= n - b:
        raise ValueError(f"offset {offset} puts the {b} local rows outside the global batch of {n}")
    with float32_region(z1):
        anchors = torch.cat([z1, z2]).float()
        candidates = torch.cat([all1, all2]).float()
        logits = anchors @ candidates.t() / temperature
        rows = torch.arange(b, device=z1.device) + offset
        own = torch.cat([rows, rows + n])
        logits = logits.index_put((torch.arange(2 * b, device=z1.device), own),
                                  logits.new_tensor(float("-inf")))
        return logits, torch.cat([rows + n, rows])


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, **global_batch) -> torch.Tensor:
    """SimCLR's NT-Xent: mean cross-entropy of `nt_xent_logits` (2N - 2 negatives per anchor)."""
    return info_nce_from_logits(*nt_xent_logits(z1, z2, temperature, **global_batch))


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
