"""RandAugment (timm, the reference's op lists): always applied; its draws come from Python's
``random`` and NumPy while rendering, so sampling draws nothing."""
from __future__ import annotations

import random
import re

import numpy as np
import torch
from PIL import Image

from ..colorspace import canonical
from ..randaugment import build_randaugment
from .base import STAGES, Knob, Stage, on_fired

__all__ = ["RandAugmentStage", "default_ra_ops", "with_magnitude"]


def default_ra_ops(color_space: str) -> str:
    """The reference uses the colour-free CMC op list whenever views are colour channels."""
    return "rgb" if canonical(color_space) == "RGB" else "cmc"


def with_magnitude(config: str, magnitude: float) -> str:
    """timm config string with its magnitude replaced, e.g. ("rand-n2-m10-mstd0.5", 5) -> "rand-n2-mstd0.5-m5"."""
    if magnitude < 0:
        raise ValueError(f"ra_magnitude={magnitude} must be >= 0")
    parts = [p for p in config.split("-") if not re.fullmatch(r"m\d+(\.\d+)?", p)]
    if float(magnitude) != int(magnitude):
        raise ValueError(f"ra_magnitude={magnitude}: timm's RandAugment takes an integer magnitude")
    return "-".join(parts + [f"m{int(magnitude)}"])


try:
    from timm.data.auto_augment import _LEVEL_DENOM
except ImportError:  # pragma: no cover  (timm < 0.9 had no name for it)
    _LEVEL_DENOM = 10.0

#: The ops whose timm function draws the resample filter (random.choice) while rendering.
_WARPS = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "TranslateXRel", "TranslateYRel")


def _batched_op(name: str, x: torch.Tensor, params: list, fill) -> torch.Tensor:
    """One RandAugment op on the views x with their (name, args, bicubic) entries."""
    from .. import batchops as B

    first = [p[1][0] if p[1] else None for p in params]
    h, w = x.shape[-2:]
    simple = {"AutoContrast": lambda: B.autocontrast(x), "Equalize": lambda: B.equalize(x),
              "Invert": lambda: B.invert(x), "Identity": lambda: x,
              "Posterize": lambda: B.posterize(x, first), "Solarize": lambda: B.solarize(x, first),
              "SolarizeAdd": lambda: B.solarize_add(x, first), "Color": lambda: B.saturation(x, first),
              "Contrast": lambda: B.contrast(x, first), "Brightness": lambda: B.brightness(x, first),
              "Sharpness": lambda: B.sharpness(x, first)}
    if name in simple:
        return simple[name]()
    matrices = {"Rotate": lambda: B.rotate_matrices(first, w, h),
                "ShearX": lambda: [(1, f, 0, 0, 1, 0) for f in first],
                "ShearY": lambda: [(1, 0, 0, f, 1, 0) for f in first],
                "TranslateX": lambda: [(1, 0, f, 0, 1, 0) for f in first],
                "TranslateY": lambda: [(1, 0, 0, 0, 1, f) for f in first],
                "TranslateXRel": lambda: [(1, 0, f * w, 0, 1, 0) for f in first],
                "TranslateYRel": lambda: [(1, 0, 0, 0, 1, f * h) for f in first]}
    if name not in matrices:
        raise NotImplementedError(f"RandAugment op {name!r} has no batched renderer; use DATA.LOADER cpu")
    return B.affine(x, matrices[name](), [bool(p[2]) for p in params], fill)


def _set_magnitude(draft, value) -> dict:
    if draft.randaugment is None:
        raise ValueError(f"policy {draft.name!r} has no RandAugment stage, so ra_magnitude cannot apply; "
                         "use policy D or E")
    return {"randaugment": with_magnitude(draft.randaugment, value)}


@STAGES.register
class RandAugmentStage(Stage):
    """Params: True (the op draws its own numbers while rendering)."""

    name = "randaugment"
    knobs = (Knob("ra_magnitude", "RandAugment's magnitude m (an integer; policies D and E)", _set_magnitude),)

    @classmethod
    def validate(cls, policy) -> None:
        if ("randaugment" in policy.stages) != (policy.randaugment is not None):
            raise ValueError(f"policy {policy.name!r}: set randaugment exactly when 'randaugment' is a stage")

    def __init__(self, policy, context):
        super().__init__(policy, context)
        self._ra = build_randaugment(policy.randaugment, context.ra_ops, policy.image_size)

    def sample(self, img) -> bool:
        return True

    def render_pil(self, img: Image.Image, params) -> Image.Image:
        return self._ra(img)

    def draw_at_render(self, params):
        """timm's RandAugment draws, made without the image: the ops that fire, in order, as
        (name, level args, bicubic or None). Same calls on Python's and NumPy's RNGs as
        ``RandAugment.__call__`` / ``AugmentOp.__call__`` (and the warps' resample choice)."""
        if params is None:
            return None
        ra = self._ra
        chosen = np.random.choice(ra.ops, ra.num_layers, replace=ra.choice_weights is None, p=ra.choice_weights)
        applied = []
        for op in chosen:
            if op.prob < 1.0 and random.random() > op.prob:
                continue
            magnitude = op.magnitude
            if op.magnitude_std > 0:
                if op.magnitude_std == float("inf"):
                    magnitude = random.uniform(0, magnitude)
                else:
                    magnitude = random.gauss(magnitude, op.magnitude_std)
            magnitude = max(0.0, min(magnitude, op.magnitude_max or _LEVEL_DENOM))
            args = tuple(op.level_fn(magnitude, op.hparams)) if op.level_fn is not None else ()
            bicubic = None
            if op.name in _WARPS:
                resample = op.kwargs.get("resample", Image.Resampling.BILINEAR)
                if isinstance(resample, (list, tuple)):
                    resample = random.choice(resample)
                bicubic = resample == Image.Resampling.BICUBIC
            applied.append((op.name, args, bicubic))
        return applied

    def render_batch(self, x: torch.Tensor, params) -> torch.Tensor:
        """Step k of every view: the views whose k-th fired op is the same op run it together."""
        fill = self._ra.ops[0].kwargs.get("fillcolor", (128, 128, 128))
        for k in range(self._ra.num_layers):
            names = {p[k][0] for p in params if p is not None and len(p) > k}
            for name in sorted(names):
                step = [p[k] if p is not None and len(p) > k and p[k][0] == name else None for p in params]
                x = on_fired(x, step, lambda v, ps, name=name: _batched_op(name, v, ps, fill))
        return x

    @classmethod
    def reference(cls, policy, context) -> list:
        return [build_randaugment(policy.randaugment, context.ra_ops, policy.image_size)]
