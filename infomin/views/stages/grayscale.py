"""RandomGrayscale: L (ITU-R 601-2 luma) replicated to three channels with grayscale_prob."""
from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from .base import STAGES, Knob, Stage, check_probability, on_fired

__all__ = ["RandomGrayscale"]


def _set_grayscale_prob(draft, value) -> dict:
    if "grayscale" not in draft.stages and value > 0:
        raise ValueError(f"policy {draft.name!r} has no grayscale stage, so grayscale_prob={value} "
                         "cannot apply; use policy A, B or D, or add 'grayscale' to stages")
    return {"grayscale_prob": float(value)}


@STAGES.register
class RandomGrayscale(Stage):
    """Params: True when it fires, else None (one torch number drawn either way, as torchvision)."""

    name = "grayscale"
    knobs = (Knob("grayscale_prob", "probability of turning a view grey (policies A, B, D; 1.0 removes the "
                                    "colour two views of a flat-coloured object would otherwise share)",
                  _set_grayscale_prob),)

    @classmethod
    def validate(cls, policy) -> None:
        check_probability(policy, "grayscale_prob")

    def sample(self, img):
        return True if torch.rand(1) < self.policy.grayscale_prob else None

    def render_pil(self, img: Image.Image, params) -> Image.Image:
        return TF.rgb_to_grayscale(img, num_output_channels=3)

    def render_cv2(self, arr: np.ndarray, params) -> np.ndarray:
        from .. import cvops

        return cvops.grayscale(arr)

    def render_batch(self, x: torch.Tensor, params) -> torch.Tensor:
        from .. import batchops

        return on_fired(x, params, lambda v, _: batchops.grayscale(v))

    @classmethod
    def reference(cls, policy, context) -> list:
        return [T.RandomGrayscale(policy.grayscale_prob)]
