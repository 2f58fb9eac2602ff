"""ColorJitter (brightness, contrast, saturation, hue in a random order), applied with jitter_prob."""
from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from .base import STAGES, Knob, Stage, check_probability, fired, on_fired

__all__ = ["ColorJitter", "jitter_pil"]


def _scale_jitter(draft, strength) -> dict:
    s = float(strength)
    if s < 0:
        raise ValueError(f"jitter_strength={s} must be >= 0")
    return {"jitter": tuple(s * j for j in draft.jitter)}


def jitter_pil(img: Image.Image, params) -> Image.Image:
    """Apply ColorJitter's sampled (order, factors) with torchvision's own functions."""
    order, b, c, s, h = params
    for fn in order.tolist():
        if fn == 0 and b is not None:
            img = TF.adjust_brightness(img, b)
        elif fn == 1 and c is not None:
            img = TF.adjust_contrast(img, c)
        elif fn == 2 and s is not None:
            img = TF.adjust_saturation(img, s)
        elif fn == 3 and h is not None:
            img = TF.adjust_hue(img, h)
    return img


@STAGES.register
class ColorJitter(Stage):
    """Params: (fn_order, brightness, contrast, saturation, hue), as ColorJitter.get_params."""

    name = "jitter"
    knobs = (Knob("jitter_strength", "scales the policy's colour jitter (1.0 = the reference; for policy D "
                                     "it is SimCLR's strength s)", _scale_jitter),)

    @classmethod
    def validate(cls, policy) -> None:
        check_probability(policy, "jitter_prob")
        if len(policy.jitter) != 4 or min(policy.jitter) < 0:
            raise ValueError(f"policy {policy.name!r}: jitter {policy.jitter} must be 4 non-negative strengths "
                             "(b, c, s, h)")
        if policy.jitter[3] > 0.5:
            raise ValueError(f"policy {policy.name!r}: hue jitter {policy.jitter[3]} exceeds 0.5, the most "
                             "ColorJitter allows; lower jitter_strength")

    def __init__(self, policy, context):
        super().__init__(policy, context)
        self._jitter = T.ColorJitter(*policy.jitter)  # its checked (min, max) ranges

    def sample(self, img):
        if not fired(self.policy.jitter_prob):
            return None
        j = self._jitter
        return T.ColorJitter.get_params(j.brightness, j.contrast, j.saturation, j.hue)

    def render_pil(self, img: Image.Image, params) -> Image.Image:
        return jitter_pil(img, params)

    def render_cv2(self, arr: np.ndarray, params) -> np.ndarray:
        from .. import cvops

        return cvops.color_jitter(arr, params)

    def render_batch(self, x: torch.Tensor, params) -> torch.Tensor:
        """Each view's four ops in its own order: at step k, every view whose k-th op is fn gets fn."""
        from .. import batchops

        ops = (batchops.brightness, batchops.contrast, batchops.saturation, batchops.hue)
        for k in range(4):
            for fn, op in enumerate(ops):
                step = [None if p is None or int(p[0][k]) != fn or p[1 + fn] is None else p[1 + fn] for p in params]
                x = on_fired(x, step, op)
        return x

    @classmethod
    def reference(cls, policy, context) -> list:
        jitter = T.ColorJitter(*policy.jitter)
        return [jitter if policy.jitter_prob >= 1.0 else T.RandomApply([jitter], p=policy.jitter_prob)]
