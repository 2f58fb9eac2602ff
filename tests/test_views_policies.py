"""Policies A-E against the reference facts (PyContrast's `pycontrast/datasets/util.py` and `RandAugment.py`) and the knob overrides."""
import pytest

from infomin.views import POLICIES, apply_overrides, default_crop_min, get_policy


def test_policy_table_matches_reference():
    a, b, c, d, e = (POLICIES[k] for k in "ABCDE")
    # A: jitter (0.4, 0.4, 0.4, 0.4) always applied, then grayscale 0.2; no blur, no RandAugment
    assert a.stages == ("jitter", "grayscale") and a.jitter == (0.4, 0.4, 0.4, 0.4) and a.jitter_prob == 1.0
    assert a.grayscale_prob == 0.2 and a.blur is None and a.randaugment is None
    # B: jitter (0.4,0.4,0.4,0.1) p0.8, grayscale 0.2 BEFORE PIL blur p0.5
    assert b.stages == ("jitter", "grayscale", "blur") and b.jitter == (0.4, 0.4, 0.4, 0.1)
    assert (b.jitter_prob, b.grayscale_prob, b.blur, b.blur_prob) == (0.8, 0.2, "pil", 0.5)
    # C: jitter (0.4,0.4,0.4,0.1) always, nothing else
    assert c.stages == ("jitter",) and c.jitter == (0.4, 0.4, 0.4, 0.1) and c.jitter_prob == 1.0
    # D: jitter (0.8,0.8,0.8,0.2) p0.8 -> conv blur p0.5 -> RandAugment n2 m10 mstd0.5 -> grayscale 0.2
    assert d.stages == ("jitter", "blur", "randaugment", "grayscale")
    assert d.jitter == (0.8, 0.8, 0.8, 0.2) and d.jitter_prob == 0.8
    assert (d.blur, d.blur_prob, d.blur_sigma) == ("conv", 0.5, (0.1, 2.0))
    assert d.randaugment == "rand-n2-m10-mstd0.5" and d.grayscale_prob == 0.2
    # E: D with (0.4,0.4,0.4,0.1) jitter and no grayscale
    assert e.stages == ("jitter", "blur", "randaugment") and e.jitter == (0.4, 0.4, 0.4, 0.1)
    assert e.grayscale_prob == 0.0 and e.randaugment == d.randaugment
    for p in POLICIES.values():  # RRC(224, (0.2, 1), ratio 3/4..4/3), flip 0.5
        assert (p.image_size, p.crop_min, p.crop_max, p.flip_prob) == (224, 0.2, 1.0, 0.5)
        assert p.ratio == pytest.approx((3 / 4, 4 / 3))


def test_crop_min_follows_memory_type():
    assert default_crop_min("bank") == 0.08 and default_crop_min("moco") == 0.2
    with pytest.raises(ValueError, match="memory"):
        default_crop_min("queue")


def test_knobs_override_only_what_they_name():
    d = POLICIES["D"]
    p = apply_overrides("D", crop_min=0.08, jitter_strength=0.5, blur_prob=0.1, ra_magnitude=5)
    assert p.crop_min == 0.08 and p.jitter == (0.4, 0.4, 0.4, 0.1) and p.blur_prob == 0.1
    assert p.randaugment == "rand-n2-mstd0.5-m5"
    assert (p.stages, p.grayscale_prob, p.jitter_prob) == (d.stages, d.grayscale_prob, d.jitter_prob)
    assert apply_overrides("D", crop_min=None) == d  # None keeps the policy's value
    assert apply_overrides("A", grayscale_prob=0.0).grayscale_prob == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(blur_prob=0.5), "no blur stage"),
    (dict(ra_magnitude=9), "no RandAugment"),
    (dict(jitter_strength=2.0), "hue jitter"),
    (dict(crop_min=0.0), "crop scale"),
    (dict(crop_min=1.5), "crop scale"),
    (dict(grayscale_prob=1.2), "probability"),
    (dict(colour="red"), "unknown view override"),
])
def test_bad_overrides_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides("A", **kwargs)


def test_unknown_policy_name_lists_choices():
    with pytest.raises(ValueError, match="A', 'B', 'C', 'D', 'E"):
        get_policy("F")
