"""RandomResizedCrop, the first step of every view (geometry: PIL's antialiased bilinear resize in
both backends, so the crop can run on a JPEG decoded at a reduced DCT scale)."""
from __future__ import annotations

import torch
import torchvision.transforms as T
from PIL import Image

from .base import STAGES, Knob, Stage

__all__ = ["RandomResizedCrop", "sample_box", "resized_crop"]

_BILINEAR = Image.Resampling.BILINEAR


def sample_box(img: Image.Image, scale, ratio) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop draw: (top, left, height, width) in original pixels."""
    return tuple(int(v) for v in T.RandomResizedCrop.get_params(img, list(scale), list(ratio)))


def resized_crop(img: Image.Image, box, size: int, scale: int = 1) -> Image.Image:
    """Crop ``box`` and resize to size x size; ``scale``: the image was decoded at 1/scale size."""
    top, left, h, w = box
    if scale == 1:  # exactly torchvision's resized_crop on PIL
        return img.crop((left, top, left + w, top + h)).resize((size, size), _BILINEAR)
    return img.resize((size, size), _BILINEAR, box=(left / scale, top / scale, (left + w) / scale,
                                                    (top + h) / scale))


@STAGES.register
class RandomResizedCrop(Stage):
    name = "crop"
    in_policy = False
    knobs = (Knob("crop_min", "RandomResizedCrop's lower bound on the crop's share of the image area "
                              "(0.08 with a memory bank, 0.2 with a MoCo queue)"),)

    @classmethod
    def validate(cls, policy) -> None:
        if not 0.0 < policy.crop_min <= policy.crop_max <= 1.0:
            raise ValueError(
                f"policy {policy.name!r}: crop scale ({policy.crop_min}, {policy.crop_max}) must satisfy "
                "0 < crop_min <= crop_max <= 1 (fractions of the image area)")

    def sample(self, img: Image.Image):
        p = self.policy
        return sample_box(img, (p.crop_min, p.crop_max), p.ratio)

    def render_pil(self, img: Image.Image, box, scale: int = 1) -> Image.Image:
        return resized_crop(img, box, self.policy.image_size, scale)

    def render_batch(self, images, boxes) -> torch.Tensor:
        """``images``: the decoded [3, H, W] images (sizes differ), one box each."""
        from ..batchops import resized_crops

        return resized_crops(images, boxes, self.policy.image_size)

    @classmethod
    def reference(cls, policy, context) -> list:
        return [T.RandomResizedCrop(policy.image_size, scale=(policy.crop_min, policy.crop_max), ratio=policy.ratio,
                                    interpolation=T.InterpolationMode.BILINEAR)]
