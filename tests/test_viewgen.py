"""Flow view generator: exact inverse, log-determinants against autograd Jacobians, view learning."""
import pytest
import torch

from infomin import mi
from infomin.viewlearn import learn_views
from infomin.viewgen import AdditiveCoupling, AffineCoupling, FlowViewGenerator



def _randomised(kind, seed=0, blocks=4):
    """A generator whose coupling nets are far from their identity initialisation."""
    torch.manual_seed(seed)
    g = FlowViewGenerator(kind, blocks=blocks, hidden=16)
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.3)
    return g


@pytest.mark.parametrize("kind", ["vp", "nvp"])
def test_round_trip_is_exact(kind):
    g = _randomised(kind)
    x = torch.randn(4, 3, 9, 7)
    y, _ = g(x)
    assert (y - x).abs().max() > 0.1  # g really transforms
    assert (g.inverse(y) - x).abs().max() < 1e-5
    assert (g(g.inverse(x))[0] - x).abs().max() < 1e-5


@pytest.mark.parametrize("kind", ["vp", "nvp"])
def test_log_determinant_matches_autograd_jacobian(kind):
    g = _randomised(kind, seed=1).double()
    pixels = torch.randn(3, 3, dtype=torch.float64)
    for p in pixels:  # g is pixel-wise: the Jacobian of one pixel's colour vector is 3x3
        jac = torch.autograd.functional.jacobian(lambda v: g(v.reshape(1, 3, 1, 1))[0].reshape(3), p)
        _, logabsdet = torch.linalg.slogdet(jac)
        with torch.no_grad():
            ld = g(p.reshape(1, 3, 1, 1))[1]
        assert float(ld) == pytest.approx(float(logabsdet), abs=1e-8)
        if kind == "vp":
            assert float(ld) == 0.0 and float(logabsdet) == pytest.approx(0.0, abs=1e-8)
        else:
            assert abs(float(ld)) > 1e-3  # affine coupling really changes volume
    # an image's log-det is the sum over its pixels
    img = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    per_pixel = sum(g(img[:, :, i:i + 1, j:j + 1])[1] for i in range(4) for j in range(5))
    assert torch.allclose(g(img)[1], per_pixel)


def test_untrained_generator_is_the_raw_split_and_pixelwise():
    g = FlowViewGenerator("nvp", blocks=3)
    x = torch.randn(2, 3, 5, 5)
    v1, v2 = g.views(x)
    assert torch.equal(v1, x[:, :1]) and torch.equal(v2, x[:, 1:])
    g = _randomised("vp")
    x2 = x.clone()
    x2[:, :, 0, 0] += 1.0  # changing one pixel changes only that pixel of g(x)
    diff = (g(x2)[0] - g(x)[0]).abs().sum(1)
    assert diff[:, 0, 0].min() > 0 and diff.flatten(1)[:, 1:].max() == 0


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        FlowViewGenerator("glow")
    with pytest.raises(ValueError, match="view1_channels"):
        FlowViewGenerator(view1_channels=3)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        AdditiveCoupling()(torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="needs labeled"):
        learn_views(FlowViewGenerator(), mi.image_critic((1, 2), arch="convnet"), [], steps=1, mode="semi")
    assert AffineCoupling().scale_bound > 0


def _correlated_images(n, seed):
    """Three channels = one shared smooth pattern + small independent noise: much shared information."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.randn(n, 1, 4, 4, generator=g), size=8, mode="bilinear")
    return base.repeat(1, 3, 1, 1) + 0.3 * torch.randn(n, 3, 8, 8, generator=g)


class Batches:
    def __init__(self, x, batch, seed):
        self.x, self.batch, self.g = x, batch, torch.Generator().manual_seed(seed)

    def __iter__(self):
        for idx in torch.randperm(len(self.x), generator=self.g).split(self.batch):
            if len(idx) == self.batch:
                yield self.x[idx], torch.zeros(self.batch, dtype=torch.long)


def _held_out_ince(generator, seed=0):
    """Fixed-budget I_NCE of a fresh critic between the generator's views, on held-out images."""
    pairs = lambda x, s: [generator.views(b)[:2] for b, _ in Batches(x, 32, s)]
    with torch.no_grad():
        train, held = pairs(_correlated_images(256, 10), 0), pairs(_correlated_images(128, 11), 1)
    torch.manual_seed(seed)
    critic = mi.image_critic((1, 2), arch="convnet", width=0.25, embed_dim=16)
    return mi.estimate_mi(train, held, critic, budget=mi.MIBudget(steps=60, lr=3e-3, eval_batches=4),
                          warn=False).value


def test_unsupervised_view_learning_lowers_inc_and_stays_invertible():
    torch.manual_seed(0)
    g = FlowViewGenerator("vp", blocks=2, hidden=16)
    before = _held_out_ince(g)
    critic = mi.image_critic((1, 2), arch="convnet", width=0.25, embed_dim=16)
    history = learn_views(g, critic, Batches(_correlated_images(256, 0), 32, 0), steps=120,
                          lr_critic=3e-3, lr_generator=3e-3)
    assert len(history) == 120 and all(h["ce"] == 0 for h in history)
    after = _held_out_ince(g)
    assert after < before - 0.3, (before, after)
    x = _correlated_images(8, 5)
    with torch.no_grad():
        assert (g.inverse(g(x)[0]) - x).abs().max() < 1e-5


def test_learn_views_command_writes_generator_summary_and_figure(tmp_path):
    import json

    from PIL import Image

    from infomin import viewlearn as lv
    from infomin.cli import learn_views as lv_cli

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 24), ("val", 8)):
        for i in range(n):
            folder = tmp_path / "data" / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((torch.rand(20, 20, 3, generator=g) * 255).byte().numpy()).save(folder / f"{i}.png")
    out = tmp_path / "out"
    assert lv_cli.main(["DATA.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(out), "LEARN.MODE", "semi",
                    "GENERATOR.KIND", "nvp", "DATA.COLOR_SPACE", "YDbDr", "LEARN.STEPS", "3",
                    "EVAL.STEPS", "2", "DATA.IMAGE_SIZE", "12", "LEARN.WIDTH", "0.125", "EVAL.WIDTH", "0.125",
                    "LEARN.BATCH_SIZE", "4", "LEARN.LABELED_BATCH_SIZE", "2", "EVAL.BATCH_SIZE", "4",
                    "DATA.NUM_WORKERS", "0", "DATA.LABELED_FRACTION", "0.5", "EVAL.PROBE_EPOCHS", "1",
                    "EVAL.EVAL_BATCHES", "1", "DEVICE", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["results"]) == {"learned (semi, nvp)", "raw YDbDr"}
    assert summary["max_roundtrip_error"] < 1e-5
    assert all(r["k"] == 4 for r in summary["results"].values())
    assert (out / "view_learning.png").read_bytes()[:4] == b"\x89PNG"
    gen, std = lv.load_generator(out / "generator.pt")
    assert gen.kind == "nvp" and gen.color_space == "YDbDr"
    x = std(torch.rand(2, 3, 6, 6))
    assert (gen.inverse(gen(x)[0]) - x).abs().max() < 1e-5
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0] == "step,i_nce,ce" and len(rows) == 4
    with pytest.raises(SystemExit):
        lv_cli.main(["LEARN.MODE", "adversarial"])
    with pytest.raises(SystemExit):
        lv_cli.main(["DATA.ROOT", str(tmp_path / "missing")])
