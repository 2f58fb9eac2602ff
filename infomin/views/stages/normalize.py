"""Colour space and normalisation, the last step of every view: the augmented uint8 RGB view ->
float32 [3, H, W] in ``context.color_space``, normalised with that space's statistics."""
from __future__ import annotations

import numpy as np
import skimage.color
import torch
import torchvision.transforms as T
from PIL import Image

from ..colorspace import NORMALIZATION, canonical, to_normalized_tensor
from .base import STAGES, Stage

__all__ = ["Normalize", "ColorTransfer", "uint8_chw"]

_SKIMAGE = {
    "Lab": skimage.color.rgb2lab, "LUV": skimage.color.rgb2luv, "XYZ": skimage.color.rgb2xyz,
    "CIERGB": skimage.color.rgb2rgbcie, "YCbCr": skimage.color.rgb2ycbcr, "YDbDr": skimage.color.rgb2ydbdr,
    "YPbPr": skimage.color.rgb2ypbpr, "YIQ": skimage.color.rgb2yiq, "YUV": skimage.color.rgb2yuv,
    "HSV": skimage.color.rgb2hsv, "HED": skimage.color.rgb2hed,
}


def uint8_chw(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)


class ColorTransfer:
    """The reference's ``color_transfer``: PIL uint8 -> scikit-image conversion -> float ndarray."""

    def __init__(self, space: str):
        self.space = canonical(space)

    def __call__(self, img):
        if self.space == "RGB":
            return img
        return _SKIMAGE[self.space](np.asarray(img)).astype(np.float32)


@STAGES.register
class Normalize(Stage):
    """No parameters; the torch conversions are tested against scikit-image's (colorspace.py)."""

    name = "normalize"
    in_policy = False

    def sample(self, img) -> None:
        return None

    def render_pil(self, img: Image.Image, params=None) -> torch.Tensor:
        return to_normalized_tensor(uint8_chw(img), self.context.color_space)

    def render_cv2(self, arr: np.ndarray, params=None) -> torch.Tensor:
        """RGB: cvops' lookup table (bit-identical to colorspace.normalize); other spaces in torch."""
        if self.context.color_space == "RGB":
            from .. import cvops

            return cvops.to_normalized_rgb(arr)
        if not (arr.flags.writeable and arr.flags.c_contiguous):  # np.asarray(PIL image) is read-only
            arr = np.array(arr)
        return to_normalized_tensor(torch.from_numpy(arr).permute(2, 0, 1), self.context.color_space)

    def render_batch(self, x: torch.Tensor, params=None) -> torch.Tensor:
        """Levels -> uint8 -> the same conversion and normalisation as ``render_pil``."""
        from ..batchops import to_uint8

        return to_normalized_tensor(to_uint8(x), self.context.color_space)

    @classmethod
    def reference(cls, policy, context) -> list:
        mean, std = NORMALIZATION[canonical(context.color_space)]
        return [ColorTransfer(context.color_space), T.ToTensor(), T.Normalize(mean, std)]
