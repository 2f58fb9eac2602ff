"""SimCLR's NT-Xent against a per-anchor loop written from the paper's definition (Chen et al.
2020, eq. 1): l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t) over the 2N embeddings."""
import math

import pytest
import torch
import torch.nn.functional as F

from infomin.losses import nt_xent, nt_xent_logits, top1_accuracy


def _loop_nt_xent(z1, z2, t):
    z = torch.cat([z1, z2]).double()
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = i + n if i < n else i - n
        sims = [float(z[i] @ z[k]) / t for k in range(2 * n) if k != i]
        total += -(float(z[i] @ z[j]) / t) + math.log(sum(math.exp(s) for s in sims))
    return total / (2 * n)


def _embeddings(n=5, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(n, d, generator=g), dim=1), F.normalize(torch.randn(n, d, generator=g), dim=1))


def test_matches_the_per_anchor_definition():
    z1, z2 = _embeddings()
    for t in (0.1, 0.5):
        assert nt_xent(z1, z2, t).item() == pytest.approx(_loop_nt_xent(z1, z2, t), rel=1e-5)


def test_hand_computed_two_images():
    # orthogonal images, identical views: each anchor sees its positive at 1/t, the two others at 0
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    expected = -2.0 + math.log(math.exp(2.0) + 2.0)
    assert nt_xent(z1, z1.clone(), t).item() == pytest.approx(expected, abs=1e-6)
    logits, target = nt_xent_logits(z1, z1.clone(), t)
    assert target.tolist() == [2, 3, 0, 1]
    assert torch.isinf(logits.diagonal()).all() and top1_accuracy(logits, target).item() == 1.0


def test_rank_slices_of_a_global_batch_average_to_the_whole_batch_loss():
    """What each of 2 processes computes (its rows as anchors, the gathered batch as candidates)
    averages to the one-process loss of the global batch, value and gradient."""
    z1, z2 = _embeddings(n=6)
    a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    nt_xent(a1, a2, 0.2).backward()
    b1, b2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    parts = [nt_xent(b1[r * 3:(r + 1) * 3], b2[r * 3:(r + 1) * 3], 0.2, all1=b1, all2=b2, offset=r * 3)
             for r in (0, 1)]
    (sum(parts) / 2).backward()
    assert (sum(parts) / 2).item() == pytest.approx(nt_xent(z1, z2, 0.2).item(), rel=1e-6)
    assert torch.allclose(a1.grad, b1.grad, atol=1e-6) and torch.allclose(a2.grad, b2.grad, atol=1e-6)


def test_low_precision_inputs_are_computed_in_float32():
    z1, z2 = _embeddings()
    assert nt_xent(z1.bfloat16(), z2.bfloat16(), 0.1).dtype == torch.float32


def test_refusals():
    z1, z2 = _embeddings()
    with pytest.raises(ValueError, match="temperature must be positive"):
        nt_xent(z1, z2, 0.0)
    with pytest.raises(ValueError, match="must be \\[B, d\\]"):
        nt_xent(z1, z2[:3], 0.1)
    with pytest.raises(ValueError, match="offset 4 puts the 5 local rows outside"):
        nt_xent(z1, z2, 0.1, all1=z1, all2=z2, offset=4)
