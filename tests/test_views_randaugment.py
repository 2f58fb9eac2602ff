"""RandAugment as the reference configures it: op lists, magnitude rule, probability, choice rule."""
import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from timm.data.auto_augment import RandAugment

from infomin.views import CMC_OPS, RGB_OPS, build_randaugment
from infomin.views.randaugment import op_names, reference_hparams

REFERENCE_RGB = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeTpu", "Solarize", "SolarizeAdd", "Color",
                 "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
REFERENCE_CMC = ("AutoContrast", "Identity", "Rotate", "Sharpness", "ShearX", "ShearY", "TranslateXRel",
                 "TranslateYRel")


def test_op_lists_are_the_references():
    # timm calls the TPU posterize (bits = int(4 m / 10)) plain "Posterize"
    assert RGB_OPS == tuple("Posterize" if n == "PosterizeTpu" else n for n in REFERENCE_RGB)
    assert CMC_OPS == REFERENCE_CMC
    assert op_names(build_randaugment(ops="rgb")) == RGB_OPS
    assert op_names(build_randaugment(ops="cmc")) == CMC_OPS


def test_config_n2_m10_mstd05_prob05_uniform_choice():
    ra = build_randaugment("rand-n2-m10-mstd0.5", "rgb", image_size=224)
    assert ra.num_layers == 2 and ra.choice_weights is None  # uniform, with replacement
    for op in ra.ops:
        assert (op.prob, op.magnitude, op.magnitude_std, op.magnitude_max) == (0.5, 10, 0.5, None)
        assert op.hparams["img_mean"] == (124, 116, 104) and op.hparams["translate_const"] == 100
    assert reference_hparams(224) == {"translate_const": 100, "img_mean": (124, 116, 104)}


def _level(ra, name, m):
    op = next(o for o in ra.ops if o.name == name)
    return op.level_fn(m, op.hparams) if op.level_fn is not None else ()


def test_magnitude_to_argument_maps():
    ra = build_randaugment(ops="rgb")
    random.seed(0)
    assert {abs(_level(ra, "Rotate", 10)[0]) for _ in range(20)} == {30.0}
    assert {_level(ra, "Rotate", 10)[0] > 0 for _ in range(50)} == {True, False}  # random sign
    assert abs(_level(ra, "ShearX", 10)[0]) == pytest.approx(0.3)
    assert abs(_level(ra, "TranslateXRel", 10)[0]) == pytest.approx(0.45)
    for name in ("Color", "Contrast", "Brightness", "Sharpness"):
        assert _level(ra, name, 10) == pytest.approx((1.9,))  # no random sign: always strengthens
    assert _level(ra, "Posterize", 10) == (4,) and _level(ra, "Posterize", 9.5) == (3,)
    assert _level(ra, "Solarize", 10) == (256,) and _level(ra, "Solarize", 9.5) == (243,)
    assert _level(ra, "SolarizeAdd", 10) == (110,)


def test_each_op_fires_with_half_probability_and_clipped_gaussian_magnitude():
    ra = build_randaugment(ops="rgb")
    op = next(o for o in ra.ops if o.name == "Brightness")
    seen = []
    op.level_fn = lambda m, hp: seen.append(m) or (1.0,)
    img = Image.new("RGB", (8, 8), (100, 50, 20))
    random.seed(0)
    n = 4000
    for _ in range(n):
        op(img)
    assert abs(len(seen) / n - 0.5) < 0.04
    m = np.array(seen)
    assert m.max() == 10.0 and m.min() > 8.0  # N(10, 0.5) clipped to [0, 10]
    assert abs((m == 10.0).mean() - 0.5) < 0.05  # about half the draws clip to exactly 10
    assert abs(m[m < 10].mean() - (10 - 0.5 * np.sqrt(2 / np.pi))) < 0.05  # half-normal below 10


def test_two_ops_drawn_uniformly_with_replacement():
    ra = build_randaugment(ops="cmc")
    picks = []

    class Recorder:
        def __init__(self, i):
            self.i = i

        def __call__(self, img):
            picks.append(self.i)
            return img

    probe = RandAugment([Recorder(i) for i in range(len(ra.ops))], ra.num_layers, ra.choice_weights)
    np.random.seed(0)
    n = 3000
    for _ in range(n):
        probe(None)
    counts = Counter(picks)
    assert len(picks) == 2 * n and set(counts) == set(range(8))
    assert max(abs(c / (2 * n) - 1 / 8) for c in counts.values()) < 0.02
    same = sum(picks[2 * i] == picks[2 * i + 1] for i in range(n)) / n
    assert abs(same - 1 / 8) < 0.03  # with replacement: the same op twice 1/8 of the time


def test_identity_op_returns_image_and_draws_like_the_others():
    ra = build_randaugment(ops="cmc")
    ident = next(o for o in ra.ops if o.name == "Identity")
    auto = next(o for o in ra.ops if o.name == "AutoContrast")
    img = Image.new("RGB", (8, 8), (10, 200, 30))
    for seed in range(20):
        random.seed(seed)
        assert ident(img) is img
        after_identity = random.random()
        random.seed(seed)
        auto(img)
        assert random.random() == after_identity


def test_bad_op_list_is_refused():
    with pytest.raises(ValueError, match="op list"):
        build_randaugment(ops="hsv")
    with pytest.raises(ValueError, match="besides 'Identity'"):
        build_randaugment(ops=["Identity"])


def test_low_magnitude_posterize_blacks_out_like_the_reference_instead_of_raising():
    # magnitude 0 -> int(4 * 0 / 10) = 0 bits: the reference's Pillow masked every bit (all zero);
    # Pillow >= 10 raises for bits=0, which used to crash ~10% of images at RA magnitudes < 2.5.
    ra = build_randaugment("rand-n1-m0", ops=["Posterize"])
    op = ra.ops[0]
    op.prob = 1.0
    img = Image.fromarray(np.full((8, 8, 3), 200, np.uint8))
    out = np.asarray(op(img))
    assert out.shape == (8, 8, 3) and out.max() == 0
    op.magnitude = 10  # 4 bits kept: 200 = 0b11001000 -> 0b11000000
    assert np.asarray(op(img)).max() == 192
