"""Named view policies A-E of the reference (PyContrast ``datasets/util.py``) stated as data.

A policy fixes everything one view needs besides the colour space: the RandomResizedCrop bounds, the
flip, and the ordered photometric stages with their strengths and probabilities. Keeping it as plain
data lets the fast path, the reference-style path and the tests read the same numbers, and lets the
view-sweep tools change one knob (``crop_min``, ``jitter_strength``, ``blur_prob``, ``ra_magnitude``)
without rebuilding a pipeline by hand.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .stages import STAGES
from .stages.blur import BLUR_KINDS  # noqa: F401  (kept importable from here)

__all__ = ["Policy", "POLICIES", "STAGES", "KNOBS", "get_policy", "apply_overrides", "default_crop_min"]

#: The built-in knobs that are not plain Policy fields (``crop_min`` is one). Every registered
#: stage's knobs, including stages added later: ``STAGES.knobs()``.
KNOBS = tuple(name for name, knob in STAGES.knobs().items() if knob.apply is not None)


@dataclass(frozen=True)
class Policy:
    """One view's augmentation recipe (see docs/views.md for the reference order of each policy).

    ``stages`` names registered stages (:data:`infomin.views.stages.STAGES`) in the order they run
    after the crop and flip; each registered stage validates the fields it reads. ``extra`` holds
    the settings of stages defined outside the library (name -> value, see ``Stage.settings``).
    """

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
    extra: tuple[tuple[str, Any], ...] = field(default=(), repr=False)

    def __post_init__(self):
        object.__setattr__(self, "extra", tuple(sorted(dict(self.extra).items())))  # hashable, order-free
        names = STAGES.policy_stages()
        bad = [s for s in self.stages if s not in names]
        if bad or len(set(self.stages)) != len(self.stages):
            raise ValueError(f"policy {self.name!r}: stages {self.stages} must be distinct names from {names}")
        unknown = sorted(set(dict(self.extra)) - set(STAGES.settings()))
        if unknown:
            raise ValueError(f"policy {self.name!r}: extra setting(s) {unknown} belong to no registered stage; "
                             f"registered stage settings: {sorted(STAGES.settings())}")
        if self.image_size < 8:
            raise ValueError(f"policy {self.name!r}: image_size {self.image_size} is too small (use >= 8, and >= 12 "
                             "with the 23-tap conv blur, whose reflection padding needs 12 px)")
        STAGES.validate(self)

    def setting(self, name: str):
        """A Policy field, or a registered stage's setting (``extra``, else the stage's default)."""
        if name in _FIELDS:
            return getattr(self, name)
        extra = dict(self.extra)
        if name in extra:
            return extra[name]
        defaults = STAGES.settings()
        if name not in defaults:
            raise KeyError(f"{name!r} is neither a Policy field nor a registered stage's setting")
        return defaults[name]


_FIELDS = frozenset(f.name for f in dataclasses.fields(Policy)) - {"name", "extra"}


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


class _Draft:
    """The policy with the caller's field overrides applied but not yet validated (what knobs read)."""

    def __init__(self, policy: Policy, changes: dict):
        self._policy, self._changes = policy, changes

    def __getattr__(self, name):
        changes = self.__dict__["_changes"]
        return changes[name] if name in changes else getattr(self.__dict__["_policy"], name)


def apply_overrides(policy: Policy | str, **overrides) -> Policy:
    """Return ``policy`` with knobs and fields replaced; unknown or inapplicable keys raise ValueError.

    Knobs are declared by the registered stages (``STAGES.knobs()``): ``crop_min``,
    ``jitter_strength`` scales the policy's own jitter (1.0 = reference; for D it equals SimCLR's
    strength s), ``blur_prob`` and ``ra_magnitude`` need the policy to have that stage. Any other
    Policy field (``grayscale_prob``, ``jitter``, ``stages``...) and any setting of a registered
    stage may be set directly. ``None`` values mean "keep the policy's value".
    """
    policy = get_policy(policy)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    knobs, settings = STAGES.knobs(), STAGES.settings()
    unknown = sorted(set(overrides) - _FIELDS - set(knobs) - set(settings))
    if unknown:
        raise ValueError(f"unknown view override(s) {unknown}; valid: {sorted(set(knobs) | _FIELDS | set(settings))}")
    changes = {k: v for k, v in overrides.items() if k in _FIELDS}
    for key in ("jitter", "ratio", "blur_sigma", "stages"):
        if key in changes:
            changes[key] = tuple(changes[key])
    extra = {k: v for k, v in overrides.items() if k in settings}
    if extra:
        changes["extra"] = {**dict(policy.extra), **extra}
    draft = _Draft(policy, changes)
    for name, knob in knobs.items():  # registration order
        if name in overrides and knob.apply is not None:
            changes.update(knob.apply(draft, overrides[name]))
    return dataclasses.replace(policy, **changes)
