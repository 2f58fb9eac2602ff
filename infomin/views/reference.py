"""Reference-style view pipelines: torchvision/PIL transforms composed the way PyContrast does it.

This is the baseline the fast path (:mod:`infomin.views.pipeline`) is measured and tested against:
every op is a stock torchvision transform, timm's RandAugment, the reference's conv blur, and
scikit-image's colour conversion, applied to a fully decoded image. It draws random numbers in the
same order as the fast path, so with the same seeds both give the same views (tests rely on that).
"""
from __future__ import annotations

import numpy as np
import skimage.color
import torch
import torchvision.transforms as T
from PIL import Image

from .blur import GaussianBlur, PILGaussianBlur
from .colorspace import NORMALIZATION, canonical
from .jigsaw import JigsawSpec, sample_offsets, tile_origins
from .policies import Policy, apply_overrides
from .randaugment import build_randaugment

__all__ = ["ColorTransfer", "build_reference_view", "ReferenceJigsaw", "ReferenceMultiView",
           "build_reference_transform", "default_ra_ops"]

_SKIMAGE = {
    "Lab": skimage.color.rgb2lab, "LUV": skimage.color.rgb2luv, "XYZ": skimage.color.rgb2xyz,
    "CIERGB": skimage.color.rgb2rgbcie, "YCbCr": skimage.color.rgb2ycbcr, "YDbDr": skimage.color.rgb2ydbdr,
    "YPbPr": skimage.color.rgb2ypbpr, "YIQ": skimage.color.rgb2yiq, "YUV": skimage.color.rgb2yuv,
    "HSV": skimage.color.rgb2hsv, "HED": skimage.color.rgb2hed,
}


def default_ra_ops(color_space: str) -> str:
    """The reference uses the colour-free CMC op list whenever views are colour channels."""
    return "rgb" if canonical(color_space) == "RGB" else "cmc"


class ColorTransfer:
    """The reference's ``color_transfer``: PIL uint8 -> scikit-image conversion -> float ndarray."""

    def __init__(self, space: str):
        self.space = canonical(space)

    def __call__(self, img):
        if self.space == "RGB":
            return img
        return _SKIMAGE[self.space](np.asarray(img)).astype(np.float32)


def _tail(color_space: str) -> list:
    mean, std = NORMALIZATION[canonical(color_space)]
    return [ColorTransfer(color_space), T.ToTensor(), T.Normalize(mean, std)]


def build_reference_view(policy: Policy, color_space: str = "RGB", ra_ops: str | None = None) -> T.Compose:
    """One view's transform, in the policy's reference order."""
    ops = [T.RandomResizedCrop(policy.image_size, scale=(policy.crop_min, policy.crop_max), ratio=policy.ratio,
                               interpolation=T.InterpolationMode.BILINEAR),
           T.RandomHorizontalFlip(policy.flip_prob)]
    for stage in policy.stages:
        if stage == "jitter":
            jitter = T.ColorJitter(*policy.jitter)
            ops.append(jitter if policy.jitter_prob >= 1.0 else T.RandomApply([jitter], p=policy.jitter_prob))
        elif stage == "blur":
            blur = GaussianBlur(22, policy.blur_sigma) if policy.blur == "conv" else PILGaussianBlur(policy.blur_sigma)
            ops.append(blur if policy.blur_prob >= 1.0 else T.RandomApply([blur], p=policy.blur_prob))
        elif stage == "randaugment":
            ops.append(build_randaugment(policy.randaugment, ra_ops or default_ra_ops(color_space), policy.image_size))
        elif stage == "grayscale":
            ops.append(T.RandomGrayscale(policy.grayscale_prob))
    return T.Compose(ops + _tail(color_space))


class ReferenceJigsaw:
    """RRC(255, 0.6-1) -> flip -> 9 tiles, each colour-converted, ToTensor'd and normalised."""

    def __init__(self, spec: JigsawSpec = JigsawSpec(), color_space: str = "RGB"):
        self.spec = spec
        self.crop = T.Compose([T.RandomResizedCrop(spec.crop_size, scale=spec.scale),
                               T.RandomHorizontalFlip(spec.flip_prob)])
        self.tail = T.Compose(_tail(color_space))

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = self.crop(img)
        t = self.spec.tile
        tiles = [self.tail(img.crop((left, top, left + t, top + t)))
                 for top, left in tile_origins(sample_offsets(self.spec), self.spec)]
        return torch.stack(tiles)


class ReferenceMultiView:
    """Decode fully, apply the same view transform independently per view, then the jigsaw view."""

    def __init__(self, policy: Policy, color_space: str = "RGB", jigsaw: JigsawSpec | None = None,
                 views: int = 2, ra_ops: str | None = None):
        self.view = build_reference_view(policy, color_space, ra_ops)
        self.jigsaw = ReferenceJigsaw(jigsaw, color_space) if jigsaw is not None else None
        self.views = views

    def __call__(self, img: Image.Image) -> dict:
        img = img.convert("RGB")
        out = {f"view{v + 1}": self.view(img).float() for v in range(self.views)}
        if self.jigsaw is not None:
            out["jigsaw"] = self.jigsaw(img).float()
        return out


def build_reference_transform(policy="D", image_size: int = 224, crop_min: float | None = None,
                              jigsaw: bool = False, color_space: str = "RGB", views: int = 2,
                              ra_ops: str | None = None, **overrides) -> ReferenceMultiView:
    """Same arguments as :func:`infomin.views.build_multiview_transform`, reference-style execution."""
    pol = apply_overrides(policy, image_size=image_size, crop_min=crop_min, **overrides)
    spec = jigsaw if isinstance(jigsaw, JigsawSpec) else (JigsawSpec() if jigsaw else None)
    return ReferenceMultiView(pol, color_space, spec, views, ra_ops)
