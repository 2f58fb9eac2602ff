"""Gaussian blur with blur_prob: the reference's GaussianBlur(22) ("conv", policies D and E) or PIL's
GaussianBlur (``"pil"``, MoCo v2's GaussianBlur2, policy B); sigma ~ U(blur_sigma)."""
from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from ..blur import GaussianBlur, PILGaussianBlur, blur_uint8, sample_sigma
from .base import STAGES, Knob, Stage, check_probability, fired, on_fired

__all__ = ["Blur", "BLUR_KINDS"]

#: "conv" = the reference's GaussianBlur(22) (23x23 separable kernel, reflect padding);
#: "pil" = PIL's ImageFilter.GaussianBlur(radius=sigma), the reference's GaussianBlur2 (policy B).
BLUR_KINDS = ("conv", "pil")


def _set_blur_prob(draft, value) -> dict:
    if "blur" not in draft.stages and value > 0:
        raise ValueError(f"policy {draft.name!r} has no blur stage, so blur_prob={value} "
                         "cannot apply; use policy B, D or E, or add 'blur' to stages and set blur")
    return {"blur_prob": float(value)}


@STAGES.register
class Blur(Stage):
    """Params: sigma (float)."""

    name = "blur"
    knobs = (Knob("blur_prob", "probability of the Gaussian blur (policies B, D, E)", _set_blur_prob),)

    @classmethod
    def validate(cls, policy) -> None:
        check_probability(policy, "blur_prob")
        if ("blur" in policy.stages) != (policy.blur is not None) or (policy.blur is not None
                                                                      and policy.blur not in BLUR_KINDS):
            raise ValueError(f"policy {policy.name!r}: blur kind {policy.blur!r} must be one of {BLUR_KINDS} exactly "
                             "when 'blur' is a stage")
        if not 0 < policy.blur_sigma[0] <= policy.blur_sigma[1]:
            raise ValueError(f"policy {policy.name!r}: blur_sigma {policy.blur_sigma} must be 0 < low <= high")
        if policy.blur == "conv" and policy.image_size <= 11:
            raise ValueError(f"policy {policy.name!r}: image_size {policy.image_size} is too small (use >= 8, and >= 12 "
                             "with the 23-tap conv blur, whose reflection padding needs 12 px)")

    def __init__(self, policy, context):
        super().__init__(policy, context)
        self._pil_blur = PILGaussianBlur(policy.blur_sigma)

    def sample(self, img):
        return sample_sigma(self.policy.blur_sigma) if fired(self.policy.blur_prob) else None

    def render_pil(self, img: Image.Image, sigma: float) -> Image.Image:
        if self.policy.blur == "conv":
            return Image.fromarray(blur_uint8(torch.from_numpy(np.array(img, dtype=np.uint8)), sigma).numpy())
        return self._pil_blur(img, sigma)

    def render_cv2(self, arr: np.ndarray, sigma: float) -> np.ndarray:
        if self.policy.blur == "conv":
            from .. import cvops

            return cvops.blur(arr, sigma)
        return np.asarray(self._pil_blur(Image.fromarray(arr), sigma))

    def render_batch(self, x: torch.Tensor, sigmas) -> torch.Tensor:
        from .. import batchops

        op = batchops.conv_blur if self.policy.blur == "conv" else batchops.pil_blur
        return on_fired(x, sigmas, op)

    @classmethod
    def reference(cls, policy, context) -> list:
        blur = GaussianBlur(22, policy.blur_sigma) if policy.blur == "conv" else PILGaussianBlur(policy.blur_sigma)
        return [blur if policy.blur_prob >= 1.0 else T.RandomApply([blur], p=policy.blur_prob)]
