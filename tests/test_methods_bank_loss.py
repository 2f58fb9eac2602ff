"""InsDis, PIRL and CMC (v1): the loss and the bank update, computed by hand.

The oracle is the memory-bank NCE of the papers written out here in float64, independent of
infomin.losses: for query f_i, positive p_i (the image's own entry in the bank as it was before
the step), negatives n_ij (bank entries at indices drawn uniformly with replacement) and
temperature t, loss = mean_i [ logsumexp(f_i.p_i/t, f_i.n_ij/t) - f_i.p_i/t ]. The negative
indices are reproduced by re-seeding torch's RNG: each bank draws (B, 1 + K) uniform indices,
CMC's L bank first, then its ab bank, and column 0 is replaced by the image's own index.
Settings are deliberately not the defaults (t=0.3, bank momentum 0.3, PIRL beta 0.3), so a method
that falls back to a default, or swaps m and 1-m, gets a different number.
"""
import pytest
import torch
import torch.nn.functional as F

from _methods_helpers import tiny_batch, tiny_kwargs
from infomin.methods import build_method

T, M, BETA, K, SEED = 0.3, 0.3, 0.3, 5, 1234


def _nce(q, positives, negatives, t):
    """q, positives [B, d]; negatives [B, K, d] -> mean NCE loss (float64)."""
    q, positives, negatives = q.double(), positives.double(), negatives.double()
    pos = (q * positives).sum(1) / t
    neg = torch.einsum("bd,bkd->bk", q, negatives) / t
    return (torch.logsumexp(torch.cat([pos[:, None], neg], 1), 1) - pos).mean()


def _draws(index, size, banks):
    """The (B, 1 + K) bank indices each bank draws, in order, after torch.manual_seed(SEED)."""
    out = []
    for _ in range(banks):
        d = torch.randint(size, (index.shape[0], K + 1))
        d[:, 0] = index
        out.append(d)
    return out


def _build(name, **extra):
    torch.manual_seed(0)
    return build_method(name, **{**tiny_kwargs(name), "queue_size": K, "temperature": T, "momentum": M,
                                 **extra})


def _unit(x):
    assert torch.allclose(x.norm(dim=1), torch.ones(x.shape[0]), atol=1e-5)  # features are normalised
    return x


def _check_update(bank_after, bank_before, feats, index):
    expected = F.normalize(M * bank_before[index] + (1 - M) * feats, dim=1)
    assert torch.allclose(bank_after[index], expected, atol=1e-6)
    others = torch.ones(bank_before.shape[0], dtype=torch.bool)
    others[index] = False
    assert torch.equal(bank_after[others], bank_before[others])


def test_insdis_loss_and_bank_update_by_hand():
    m = _build("InsDis")
    batch = tiny_batch()
    idx = batch["index"]
    bank = m.memory.bank.clone()
    torch.manual_seed(SEED)
    out = m(batch)
    torch.manual_seed(SEED)
    (draw,) = _draws(idx, bank.shape[0], 1)
    with torch.no_grad():
        f = _unit(m.head(m.encoder(batch["view1"])))
    expected = _nce(f, bank[draw[:, 0]], bank[draw[:, 1:]], T)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    _check_update(m.memory.bank, bank, f, idx)


def test_pirl_loss_mixes_the_jigsaw_branch_with_beta_against_the_same_bank_rows():
    m = _build("PIRL", beta=BETA)
    batch = tiny_batch()
    idx = batch["index"]
    bank = m.memory.bank.clone()
    torch.manual_seed(SEED)
    out = m(batch)
    torch.manual_seed(SEED)
    (draw,) = _draws(idx, bank.shape[0], 1)
    with torch.no_grad():
        f = _unit(m.head(m.encoder(batch["view1"])))
        # the jigsaw head shuffles the tiles with torch's RNG, right after the bank draw
        f_jig = _unit(m.jigsaw_head(m.encoder(batch["jigsaw"].flatten(0, 1))))
    pos, neg = bank[draw[:, 0]], bank[draw[:, 1:]]
    main, jig = _nce(f, pos, neg, T), _nce(f_jig, pos, neg, T)
    assert out["loss_contrast"].item() == pytest.approx(main.item(), rel=1e-5)
    assert out["loss_jigsaw"].item() == pytest.approx(jig.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(((1 - BETA) * main + BETA * jig).item(), rel=1e-5)
    _check_update(m.memory.bank, bank, f, idx)  # the bank follows the whole-image view only


def test_cmc_contrasts_each_stream_with_the_other_streams_bank_and_updates_both():
    m = _build("CMC")
    batch = tiny_batch()
    idx = batch["index"]
    bank_l, bank_ab = m.memory["l"].bank.clone(), m.memory["ab"].bank.clone()
    assert not torch.equal(bank_l, bank_ab)  # else a swapped bank could not show
    torch.manual_seed(SEED)
    out = m(batch)
    torch.manual_seed(SEED)
    draw_l, draw_ab = _draws(idx, bank_l.shape[0], 2)
    with torch.no_grad():
        f_l, f_ab = (_unit(f) for f in m.head(m.encoder(batch["view1"])).split(8, dim=1))
    l_to_ab = _nce(f_l, bank_ab[draw_ab[:, 0]], bank_ab[draw_ab[:, 1:]], T)
    ab_to_l = _nce(f_ab, bank_l[draw_l[:, 0]], bank_l[draw_l[:, 1:]], T)
    assert out["loss"].item() == pytest.approx((l_to_ab + ab_to_l).item(), rel=1e-5)
    _check_update(m.memory["l"].bank, bank_l, f_l, idx)
    _check_update(m.memory["ab"].bank, bank_ab, f_ab, idx)
