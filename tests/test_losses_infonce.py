import math

import pytest
import torch
import torch.nn.functional as F

from infomin.losses import contrastive_logits, info_nce, infomin_loss, mix_jigsaw, supervised_ce, top1_accuracy


def _hand_case():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    negatives = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    t = 0.5
    # row 1: positive 1/t = 2, negatives 0 and -2; row 2: positive 0.8/t = 1.6, negatives 2 and 0
    row1 = math.log(1 + math.exp(-2) + math.exp(-4))
    row2 = -1.6 + math.log(math.exp(1.6) + math.exp(2) + 1)
    return q, k, negatives, t, (row1 + row2) / 2


def test_info_nce_matches_hand_computed_value():
    q, k, negatives, t, expected = _hand_case()
    assert info_nce(q, k, negatives, t).item() == pytest.approx(expected, abs=1e-6)
    logits = contrastive_logits(q, k, negatives, t)
    assert torch.allclose(logits, torch.tensor([[2.0, 0.0, -2.0], [1.6, 2.0, 0.0]]))
    assert top1_accuracy(logits).item() == 0.5


def test_per_sample_negatives_equal_shared_ones_and_batch_of_one_works():
    q, k, negatives, t, expected = _hand_case()
    per_sample = negatives.expand(2, -1, -1)
    assert info_nce(q, k, per_sample, t).item() == pytest.approx(expected, abs=1e-6)
    one = info_nce(q[:1], k[:1], negatives, t)
    assert one.item() == pytest.approx(math.log(1 + math.exp(-2) + math.exp(-4)), abs=1e-6)


def test_infomin_mix_weights_the_two_terms():
    q, k, negatives, t, expected = _hand_case()
    q_jig = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    jig = info_nce(q_jig, k, negatives, t)
    for beta in (0.0, 0.5, 0.8):
        got = infomin_loss(q, q_jig, k, negatives, t, beta)
        assert got.item() == pytest.approx((1 - beta) * expected + beta * jig.item(), abs=1e-6)
    with pytest.raises(ValueError, match="beta"):
        mix_jigsaw(jig, jig, 1.5)


def test_logits_are_float32_under_half_inputs_and_bad_shapes_are_refused():
    q, k, negatives, t, expected = _hand_case()
    loss = info_nce(q.bfloat16(), k.bfloat16(), negatives.bfloat16(), t)
    assert loss.dtype == torch.float32
    with pytest.raises(ValueError, match="temperature"):
        info_nce(q, k, negatives, 0.0)
    with pytest.raises(ValueError, match="negatives"):
        info_nce(q, k, negatives.expand(3, -1, -1), t)


def test_supervised_ce_is_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    expected = (-F.log_softmax(logits, 1)[0, 0] - F.log_softmax(logits, 1)[1, 2]) / 2
    assert supervised_ce(logits, labels).item() == pytest.approx(expected.item())
    assert top1_accuracy(logits, labels).item() == 0.5
