"""RandAugment (timm, the reference's op lists): always applied; its draws come from Python's
``random`` and NumPy while rendering, so sampling draws nothing."""
from __future__ import annotations

import re

from PIL import Image

from ..colorspace import canonical
from ..randaugment import build_randaugment
from .base import STAGES, Knob, Stage

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

    @classmethod
    def reference(cls, policy, context) -> list:
        return [build_randaugment(policy.randaugment, context.ra_ops, policy.image_size)]
