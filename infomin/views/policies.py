"""Named view policies A-E of the reference (PyContrast ``datasets/util.py``) stated as data.

A policy fixes everything one view needs besides the colour space: the RandomResizedCrop bounds, the
flip, and the ordered photometric stages with their strengths and probabilities. Keeping it as plain
data lets the fast path, the reference-style path and the tests read the same numbers, and lets the
view-sweep tools change one knob (``crop_min``, ``jitter_strength``, ``blur_prob``, ``ra_magnitude``)
without rebuilding a pipeline by hand.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

__all__ = ["Policy", "POLICIES", "STAGES", "KNOBS", "get_policy", "apply_overrides", "default_crop_min"]

#: Photometric stages a policy may order (the crop and flip always come first).
STAGES = ("jitter", "blur", "randaugment", "grayscale")
#: Blur kinds: "conv" = the reference's GaussianBlur(22) (23x23 separable kernel, reflect padding);
#: "pil" = PIL's ImageFilter.GaussianBlur(radius=sigma), the reference's GaussianBlur2 (policy B).
BLUR_KINDS = ("conv", "pil")
#: The sweepable knobs of the cross-team contract (besides crop_min, which is a Policy field).
KNOBS = ("jitter_strength", "blur_prob", "ra_magnitude")


@dataclass(frozen=True)
class Policy:
    """One view's augmentation recipe (see docs/views.md for the reference order of each policy)."""

    name: str
    stages: tuple[str, ...]
    jitter: tuple[float, float, float, float]  # ColorJitter brightness, contrast, saturation, hue
    jitter_prob: float
    grayscale_prob: float = 0.0
    blur: str | None = None
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    randaugment: str | None = None  # timm config string, e.g. "rand-n2-m10-mstd0.5"
    crop_min: float = 0.2
    crop_max: float = 1.0
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_prob: float = 0.5
    image_size: int = 224

    def __post_init__(self):
        bad = [s for s in self.stages if s not in STAGES]
        if bad or len(set(self.stages)) != len(self.stages):
            raise ValueError(f"policy {self.name!r}: stages {self.stages} must be distinct names from {STAGES}")
        for field in ("jitter_prob", "grayscale_prob", "blur_prob", "flip_prob"):
            value = getattr(self, field)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"policy {self.name!r}: {field}={value} is not a probability in [0, 1]")
        if not 0.0 < self.crop_min <= self.crop_max <= 1.0:
            raise ValueError(
                f"policy {self.name!r}: crop scale ({self.crop_min}, {self.crop_max}) must satisfy "
                "0 < crop_min <= crop_max <= 1 (fractions of the image area)")
        if len(self.jitter) != 4 or min(self.jitter) < 0:
            raise ValueError(f"policy {self.name!r}: jitter {self.jitter} must be 4 non-negative strengths (b, c, s, h)")
        if self.jitter[3] > 0.5:
            raise ValueError(f"policy {self.name!r}: hue jitter {self.jitter[3]} exceeds 0.5, the most ColorJitter allows;"
                             " lower jitter_strength")
        if ("blur" in self.stages) != (self.blur is not None) or (self.blur is not None and self.blur not in BLUR_KINDS):
            raise ValueError(f"policy {self.name!r}: blur kind {self.blur!r} must be one of {BLUR_KINDS} exactly when "
                             "'blur' is a stage")
        if ("randaugment" in self.stages) != (self.randaugment is not None):
            raise ValueError(f"policy {self.name!r}: set randaugment exactly when 'randaugment' is a stage")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"policy {self.name!r}: blur_sigma {self.blur_sigma} must be 0 < low <= high")
        if self.image_size < 8 or (self.blur == "conv" and self.image_size <= 11):
            raise ValueError(f"policy {self.name!r}: image_size {self.image_size} is too small (use >= 8, and >= 12 "
                             "with the 23-tap conv blur, whose reflection padding needs 12 px)")


_RA = "rand-n2-m10-mstd0.5"
POLICIES: dict[str, Policy] = {
    # InsDis / MoCo / PIRL: jitter always on, hue 0.4.
    "A": Policy("A", ("jitter", "grayscale"), (0.4, 0.4, 0.4, 0.4), 1.0, grayscale_prob=0.2),
    # MoCo v2: grayscale comes BEFORE the (PIL) blur in the reference.
    "B": Policy("B", ("jitter", "grayscale", "blur"), (0.4, 0.4, 0.4, 0.1), 0.8, grayscale_prob=0.2,
                blur="pil", blur_prob=0.5),
    # CMC: jitter always on, no grayscale, no blur.
    "C": Policy("C", ("jitter",), (0.4, 0.4, 0.4, 0.1), 1.0),
    # InfoMin: blur before RandAugment, grayscale last.
    "D": Policy("D", ("jitter", "blur", "randaugment", "grayscale"), (0.8, 0.8, 0.8, 0.2), 0.8,
                grayscale_prob=0.2, blur="conv", blur_prob=0.5, randaugment=_RA),
    # CMC v2: D with MoCo v2's jitter and no grayscale.
    "E": Policy("E", ("jitter", "blur", "randaugment"), (0.4, 0.4, 0.4, 0.1), 0.8,
                blur="conv", blur_prob=0.5, randaugment=_RA),
}


def default_crop_min(memory: str) -> float:
    """The reference's crop lower bound: 0.08 with a memory bank, 0.2 with a MoCo queue."""
    table = {"bank": 0.08, "moco": 0.2}
    if memory not in table:
        raise ValueError(f"unknown memory type {memory!r}; expected one of {sorted(table)}")
    return table[memory]


def get_policy(name: str | Policy) -> Policy:
    if isinstance(name, Policy):
        return name
    if name not in POLICIES:
        raise ValueError(f"unknown view policy {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name]


def _with_magnitude(config: str, magnitude: float) -> str:
    if magnitude < 0:
        raise ValueError(f"ra_magnitude={magnitude} must be >= 0")
    parts = [p for p in config.split("-") if not re.fullmatch(r"m\d+(\.\d+)?", p)]
    if float(magnitude) != int(magnitude):
        raise ValueError(f"ra_magnitude={magnitude}: timm's RandAugment takes an integer magnitude")
    return "-".join(parts + [f"m{int(magnitude)}"])


def apply_overrides(policy: Policy | str, **overrides) -> Policy:
    """Return ``policy`` with knobs and fields replaced; unknown or inapplicable keys raise ValueError.

    Knobs: ``jitter_strength`` scales the policy's own jitter (1.0 = reference; for D it equals
    SimCLR's strength s), ``blur_prob`` and ``ra_magnitude`` need the policy to have that stage.
    Any other Policy field (``crop_min``, ``grayscale_prob``, ``jitter``, ``stages``...) may be set
    directly. ``None`` values mean "keep the policy's value".
    """
    policy = get_policy(policy)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(Policy)} - {"name"}
    unknown = sorted(set(overrides) - fields - set(KNOBS))
    if unknown:
        raise ValueError(f"unknown view override(s) {unknown}; valid: {sorted(set(KNOBS) | fields)}")
    changes = {k: v for k, v in overrides.items() if k in fields}
    for key in ("jitter", "ratio", "blur_sigma", "stages"):
        if key in changes:
            changes[key] = tuple(changes[key])
    if "jitter_strength" in overrides:
        s = float(overrides["jitter_strength"])
        if s < 0:
            raise ValueError(f"jitter_strength={s} must be >= 0")
        changes["jitter"] = tuple(s * j for j in changes.get("jitter", policy.jitter))
    if "blur_prob" in overrides:
        if "blur" not in changes.get("stages", policy.stages) and overrides["blur_prob"] > 0:
            raise ValueError(f"policy {policy.name!r} has no blur stage, so blur_prob={overrides['blur_prob']} "
                             "cannot apply; use policy B, D or E, or add 'blur' to stages and set blur")
        changes["blur_prob"] = float(overrides["blur_prob"])
    if "ra_magnitude" in overrides:
        config = changes.get("randaugment", policy.randaugment)
        if config is None:
            raise ValueError(f"policy {policy.name!r} has no RandAugment stage, so ra_magnitude cannot apply; "
                             "use policy D or E")
        changes["randaugment"] = _with_magnitude(config, overrides["ra_magnitude"])
    return dataclasses.replace(policy, **changes)
