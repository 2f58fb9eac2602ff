"""The view-stage registry: a stage added from outside the library runs in both backends and the
reference pipeline, its knob reaches it, and every built-in knob reaches its stage from the config.

Oracles: inversion is 255 - level (hand-computed), torchvision's ``RandomInvert`` for the reference
pipeline (it draws one torch number, as the toy stage does), and the policy values the knobs must
produce (1.0x/0.5x the reference jitter, the timm magnitude string).
"""
import argparse

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image, ImageOps

from _views_helpers import jpeg_bytes, open_jpeg, seed_all
from infomin.views import (STAGES, Knob, Policy, Stage, apply_overrides, build_multiview_transform,
                           build_reference_transform)
from infomin.views.colorspace import NORMALIZATION


class Invert(Stage):
    """Toy photometric stage: invert the view with probability invert_prob (one torch draw)."""

    name = "invert"
    settings = {"invert_prob": 0.0}
    knobs = (Knob("invert_prob", "probability of inverting the view"),)

    @classmethod
    def validate(cls, policy):
        p = policy.setting("invert_prob")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"policy {policy.name!r}: invert_prob={p} is not a probability")

    def sample(self, img):
        return True if torch.rand(1) < self.policy.setting("invert_prob") else None

    def render_pil(self, img, params):
        return ImageOps.invert(img)

    def render_cv2(self, arr, params):
        return 255 - arr

    @classmethod
    def reference(cls, policy, context):
        return [T.RandomInvert(policy.setting("invert_prob"))]


@pytest.fixture
def invert_stage():
    STAGES.register(Invert)
    try:
        yield Invert
    finally:
        STAGES.unregister("invert")


def _toy_policy(prob, stages=("jitter", "invert")):
    return Policy("toy", stages, (0.4, 0.4, 0.4, 0.1), 0.8, image_size=32, extra={"invert_prob": prob})


def _levels(x):
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in NORMALIZATION["RGB"])
    return (x * std + mean) * 255


@pytest.mark.parametrize("backend", ["pil", "cv2"])
def test_registered_stage_runs_in_the_pipeline(invert_stage, backend):
    data = jpeg_bytes(90, 70)
    views = {p: build_multiview_transform(_toy_policy(p, ("invert",)), image_size=32, backend=backend,
                                          fast_decode=False) for p in (0.0, 1.0)}
    for seed in range(2):
        out = {}
        for p, t in views.items():
            seed_all(seed)
            out[p] = t(open_jpeg(data))
        for key in ("view1", "view2"):  # same crops, one inverted: levels sum to 255
            assert torch.allclose(_levels(out[0.0][key]) + _levels(out[1.0][key]), torch.tensor(255.0), atol=1e-3)


def test_registered_stage_matches_its_reference_and_both_backends(invert_stage):
    data = jpeg_bytes(90, 70)
    policy = _toy_policy(0.5)
    fast = {b: build_multiview_transform(policy, image_size=32, backend=b, fast_decode=False) for b in ("pil", "cv2")}
    ref = build_reference_transform(policy, image_size=32)
    assert isinstance(ref.view.transforms[2], T.RandomApply) and isinstance(ref.view.transforms[3], T.RandomInvert)
    fired = []
    for seed in range(6):
        seed_all(seed)
        a = fast["pil"](open_jpeg(data))
        seed_all(seed)
        b = ref(open_jpeg(data))
        seed_all(seed)
        params = fast["pil"].sample_view(Image.new("RGB", (90, 70)))
        fired.append(params.stages["invert"] is not None)
        for key in ("view1", "view2"):
            assert torch.allclose(a[key], b[key], atol=1e-5)
        seed_all(seed)
        c = fast["cv2"](open_jpeg(data))  # jitter's hue may move a level; the inversion must not
        assert (_levels(c["view1"]) - _levels(a["view1"])).abs().mean() < 2.0
    assert any(fired) and not all(fired)


def test_registered_knob_reaches_the_stage_and_the_tools(invert_stage):
    assert "invert_prob" in STAGES.knobs() and "invert" in STAGES.policy_stages()
    base = _toy_policy(0.0)
    assert apply_overrides(base, invert_prob=0.7).setting("invert_prob") == 0.7
    t = build_multiview_transform(base, image_size=32, invert_prob=1.0)
    seed_all(0)
    assert all(t.sample_view(Image.new("RGB", (50, 40))).stages["invert"] for _ in range(5))
    with pytest.raises(ValueError, match="invert_prob=1.5 is not a probability"):
        apply_overrides(base, invert_prob=1.5)
    from infomin.cli.estimate_mi import add_view_knob_options

    parser = argparse.ArgumentParser()
    assert "invert_prob" in add_view_knob_options(parser)
    assert parser.parse_args(["--invert-prob", "0.3"]).invert_prob == 0.3
    from infomin.pretrain.config import get_cfg  # a registered knob is a pretraining config key too

    cfg = get_cfg()
    assert cfg.VIEWS.INVERT_PROB is None
    cfg.merge_from_list(["VIEWS.INVERT_PROB", "0.4"])
    assert cfg.VIEWS.INVERT_PROB == 0.4


def test_registry_is_restored_and_refuses_clashes():
    assert "invert" not in STAGES and "invert_prob" not in STAGES.knobs()
    with pytest.raises(ValueError, match="must be distinct names from"):
        Policy("toy", ("invert",), (0.0,) * 4, 0.0)
    with pytest.raises(ValueError, match="belong to no registered stage"):
        Policy("toy", (), (0.0,) * 4, 0.0, extra={"invert_prob": 0.5})

    class Dup(Stage):
        name = "blur"

    class Clash(Stage):
        name = "other"
        knobs = (Knob("blur_prob", "taken"),)

    for cls, message in ((Dup, "already registered"), (Clash, "already belong")):
        with pytest.raises(ValueError, match=message):
            STAGES.register(cls)
    assert "other" not in STAGES
    with pytest.raises(ValueError, match="unknown view stage 'nope'"):
        STAGES.get("nope")


def test_builtin_stages_and_knobs_in_reference_order():
    assert STAGES.policy_stages() == ("jitter", "blur", "randaugment", "grayscale")
    assert tuple(STAGES.knobs()) == ("crop_min", "jitter_strength", "blur_prob", "ra_magnitude", "grayscale_prob")


@pytest.mark.parametrize("key, value, expect", [
    ("CROP_MIN", 0.5, lambda p: p.crop_min == 0.5),
    ("JITTER_STRENGTH", 0.5, lambda p: p.jitter == (0.4, 0.4, 0.4, 0.1)),
    ("BLUR_PROB", 0.1, lambda p: p.blur_prob == 0.1 and p.jitter == (0.8, 0.8, 0.8, 0.2)),
    ("RA_MAGNITUDE", 5, lambda p: p.randaugment == "rand-n2-mstd0.5-m5" and p.blur_prob == 0.5),
    ("GRAYSCALE_PROB", 1.0, lambda p: p.grayscale_prob == 1.0 and p.jitter == (0.8, 0.8, 0.8, 0.2)),
])
def test_every_knob_has_a_config_key_that_reaches_its_stage(key, value, expect):
    from infomin.pretrain import build
    from infomin.pretrain.config import get_cfg
    from infomin.pretrain.view_sweep import engine_knobs

    assert set(engine_knobs()) == set(STAGES.knobs())  # every built-in knob is sweepable with the engine
    cfg = get_cfg()
    cfg.MODEL.METHOD = "InfoMin"
    cfg.VIEWS.IMAGE_SIZE = 32
    cfg.VIEWS[key] = value
    policy = build.build_train_transform(cfg).policy
    assert expect(policy), policy
    assert policy.crop_min == (0.5 if key == "CROP_MIN" else 0.2)  # the method's bound otherwise


def test_grayscale_knob_is_refused_where_no_stage_would_use_it():
    from infomin.views import build_multiview_transform

    assert build_multiview_transform("B", image_size=32, grayscale_prob=1.0).policy.grayscale_prob == 1.0
    for policy in ("C", "E"):
        with pytest.raises(ValueError, match=f"policy '{policy}' has no grayscale stage"):
            build_multiview_transform(policy, image_size=32, grayscale_prob=1.0)


def test_view_params_keep_the_named_fields():
    t = build_multiview_transform("D", image_size=32)
    seed_all(3)
    views = [t.sample_view(Image.new("RGB", (60, 50))) for _ in range(50)]
    assert {type(v.grayscale) for v in views} == {bool}
    assert any(v.jitter is not None for v in views) and any(v.blur_sigma is None for v in views)
    assert all(v.jitter is v.stages["jitter"] and v.blur_sigma == v.stages["blur"] for v in views)
    assert np.mean([v.grayscale for v in views]) < 0.5
