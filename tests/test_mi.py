"""I_NCE / DV estimator: analytic Gaussian mutual information is the oracle."""
import math
import warnings

import pytest
import torch
from PIL import Image

from infomin import mi
from infomin.cli import estimate_mi



class GaussianPairs:
    """x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) e: I(x; y) = -d/2 log(1 - rho^2) nats."""

    def __init__(self, dim, rho, batch, batches, seed):
        self.dim, self.rho, self.batch, self.batches, self.seed = dim, rho, batch, batches, seed

    @property
    def true_mi(self):
        return -self.dim / 2 * math.log(1 - self.rho ** 2)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        for _ in range(self.batches):
            x = torch.randn(self.batch, self.dim, generator=g)
            yield x, self.rho * x + math.sqrt(1 - self.rho ** 2) * torch.randn(self.batch, self.dim, generator=g)


@pytest.mark.parametrize("bound", ["nce", "dv", "mine"])
def test_recovers_known_gaussian_mi(bound):
    # true MI 1.02 nats, K = 64 (log K = 4.16, well above): tolerance 0.25 nats, from below
    train, held = GaussianPairs(2, 0.8, 64, 40, seed=0), GaussianPairs(2, 0.8, 64, 8, seed=1)
    torch.manual_seed(0)
    est = mi.estimate_mi(train, held, mi.mlp_critic(2, hidden=64), bound=bound,
                         budget=mi.MIBudget(steps=150, lr=3e-3, eval_batches=8))
    assert abs(est.value - train.true_mi) < 0.25, est.summary()
    assert len(est.per_batch) == 8 and est.std > 0
    if bound == "nce":
        assert est.k == 64 and est.k_kind == "in-batch"
        assert est.log_k == pytest.approx(math.log(64))
    else:
        assert est.k is None


def test_never_exceeds_log_k_and_warns_near_ceiling():
    # true MI ~ 12.4 nats but only K = 8 candidates: the estimate saturates at log 8 = 2.08
    train, held = GaussianPairs(4, 0.999, 8, 50, seed=0), GaussianPairs(4, 0.999, 8, 10, seed=1)
    torch.manual_seed(0)
    with pytest.warns(mi.MICeilingWarning, match="log K"):
        est = mi.estimate_mi(train, held, mi.mlp_critic(4, hidden=64, temperature=0.05),
                             budget=mi.MIBudget(steps=300, lr=3e-3))
    assert max(est.per_batch) <= math.log(8) + 1e-6
    assert max(est.train_losses) <= math.log(8) + 1e-6
    assert est.near_ceiling and "ceiling log K = 2.079" in est.summary()


def test_no_warning_far_from_ceiling():
    train, held = GaussianPairs(1, 0.5, 64, 20, seed=0), GaussianPairs(1, 0.5, 64, 4, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mi.MICeilingWarning)
        est = mi.estimate_mi(train, held, mi.mlp_critic(1, hidden=16),
                             budget=mi.MIBudget(steps=30, eval_batches=4))
    assert not est.near_ceiling


def test_queue_bound_states_k_and_stays_below_log_k():
    train, held = GaussianPairs(2, 0.9, 16, 60, seed=0), GaussianPairs(2, 0.9, 16, 20, seed=1)
    est = mi.estimate_mi(train, held, mi.mlp_critic(2, hidden=32), queue_size=64,
                         budget=mi.MIBudget(steps=40, eval_batches=5), warn=False)
    assert est.k == 65 and est.k_kind == "queue"
    assert max(est.per_batch) <= math.log(65) + 1e-6


def test_bounds_match_their_formulas():
    s = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3], [1.5, -0.2, 3.0]])
    value, k = mi.nce_bound(s)
    row = -torch.log_softmax(s, 1).diagonal().mean()
    col = -torch.log_softmax(s, 0).diagonal().mean()
    assert k == 3 and float(value) == pytest.approx(math.log(3) - 0.5 * float(row + col), abs=1e-6)
    assert float(mi.nce_bound(torch.zeros(5, 5))[0]) == pytest.approx(0.0, abs=1e-6)
    off = s[~torch.eye(3, dtype=torch.bool)]
    assert float(mi.dv_bound(s)) == pytest.approx(float(s.diagonal().mean() - torch.log(off.exp().mean())),
                                                 abs=1e-6)


def test_bad_arguments_are_refused_clearly():
    pairs = GaussianPairs(1, 0.5, 8, 2, seed=0)
    with pytest.raises(ValueError, match="bound must be one of"):
        mi.estimate_mi(pairs, pairs, mi.mlp_critic(1), bound="jsd")
    with pytest.raises(ValueError, match="queue_size"):
        mi.estimate_mi(pairs, pairs, mi.mlp_critic(1), bound="dv", queue_size=16)
    with pytest.raises(ValueError, match="view1"):
        mi.as_pair({"image": torch.zeros(1)})
    with pytest.raises(ValueError, match="temperature"):
        mi.mlp_critic(1, temperature=0)


def _tiny_images(n=24, size=24):
    g = torch.Generator().manual_seed(0)
    return [(Image.fromarray((torch.rand(size, size, 3, generator=g) * 255).byte().numpy()), i % 3)
            for i in range(n)]


def test_image_views_through_loaders_and_resnet_critic():
    import torchvision.transforms as T

    aug = T.Compose([T.RandomResizedCrop(16, scale=(0.3, 1.0)), T.ToTensor()])
    train, held = mi.image_pair_loaders(_tiny_images(), lambda im: {"view1": aug(im), "view2": aug(im)},
                                        batch_size=4, heldout_fraction=0.25)
    critic = mi.image_critic(3, arch="resnet18", width=0.125, embed_dim=16)
    est = mi.estimate_mi(train, held, critic, budget=mi.MIBudget(steps=3, eval_batches=3), warn=False)
    assert est.k == 4 and len(est.per_batch) == 3 and math.isfinite(est.value)
    assert est.value <= math.log(4) + 1e-6
    with pytest.raises(ValueError, match="fewer than batch_size"):
        mi.image_pair_loaders(_tiny_images(8), aug, batch_size=8)


def test_two_stream_critic_for_channel_split_views():
    critic = mi.image_critic((1, 2), arch="convnet", width=0.25, embed_dim=8)
    assert not critic.shared
    scores = critic(torch.randn(4, 1, 8, 8), torch.randn(4, 2, 8, 8))
    assert scores.shape == (4, 4) and scores.abs().max() <= 1 / critic.temperature + 1e-5
    with pytest.raises(ValueError, match="shared encoder"):
        mi.image_critic((1, 2), shared=True)


def test_command_compares_policies_with_one_budget(tmp_path, capsys):
    import json

    for split in ("train", "val"):
        for i, (im, label) in enumerate(_tiny_images(12, 40)):
            folder = tmp_path / "data" / split / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            im.save(folder / f"{i}.png")
    out = tmp_path / "out"
    assert estimate_mi.main(["--data", str(tmp_path / "data"), "--policy", "A,D", "--image-size", "24", "--steps", "2",
                    "--batch-size", "4", "--eval-batches", "2", "--arch", "convnet", "--width", "0.25",
                    "--workers", "0", "--output-dir", str(out)]) == 0
    saved = json.loads((out / "estimates.json").read_text())["estimates"]
    assert set(saved) == {"A", "D"}
    for est in saved.values():
        assert est["k"] == 4 and est["k_kind"] == "in-batch" and est["budget"]["steps"] == 2
        assert est["value"] <= math.log(4) + 1e-6
    assert (out / "estimates.png").read_bytes()[:4] == b"\x89PNG"
    assert "K = 4 (in-batch)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        estimate_mi.main(["--data", str(tmp_path / "data"), "--policy", "Z"])
