"""OpenCV twins of the view ops, on uint8 HxWx3 RGB arrays: same parameters, close pixels, less time.

The PIL pipeline spends most of its time in PIL's per-pixel C loops (the 8-bit HSV round trip of
the hue jitter alone is a quarter of it). These functions take the *same* sampled parameters and
compute each op the way PIL/torchvision define it, with OpenCV's vectorised kernels:

* brightness and contrast are per-channel affine maps, so they are exact 256-entry lookup tables
  (PIL's ``blend`` arithmetic in float32, truncated to bytes as PIL does);
* saturation blends with the grayscale image (``L = 0.299 R + 0.587 G + 0.114 B``) as PIL does;
  OpenCV's grayscale rounds with 14-bit instead of 16-bit weights, so a pixel may be one level off;
* hue shifts H in 8-bit full-range HSV (a 256-step circle; PIL uses 255 steps and truncates where
  OpenCV rounds), so saturated pixels move by a level or two relative to PIL's round trip;
* the blur is the reference's 23-tap Gaussian (same kernel, same sigma, reflection padding, float32
  sums truncated to bytes) as one separable filter;
* ToTensor + Normalize is a per-channel lookup table holding exactly the float32 numbers that
  ``colorspace.normalize`` computes for each of the 256 levels (bit-identical, ~3x faster).

Tests (``tests/test_views_cv2.py``) bound each op's difference from PIL given the same parameters.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

from .blur import gaussian_kernel1d
from .colorspace import normalize

__all__ = ["adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "color_jitter",
           "grayscale", "blur", "gray_l", "to_normalized_rgb"]

_LEVELS = np.arange(256, dtype=np.float32)


def _blend_lut(base: float, factor: float) -> np.ndarray:
    """PIL's Image.blend(constant ``base``, image, factor) per level: trunc(clip(base + f (x - base)))."""
    out = np.float32(base) + np.float32(factor) * (_LEVELS - np.float32(base))
    return np.clip(out, 0, 255).astype(np.uint8)


def adjust_brightness(arr: np.ndarray, factor: float) -> np.ndarray:
    return cv2.LUT(arr, _blend_lut(0.0, factor))


def gray_l(arr: np.ndarray) -> np.ndarray:
    """PIL's "L" conversion (ITU-R 601-2 luma), to within one level."""
    return cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)


def adjust_contrast(arr: np.ndarray, factor: float) -> np.ndarray:
    """PIL's ImageEnhance.Contrast: blend with the rounded mean of the grayscale image."""
    mean = int(float(np.mean(gray_l(arr))) + 0.5)
    return cv2.LUT(arr, _blend_lut(float(mean), factor))


def adjust_saturation(arr: np.ndarray, factor: float) -> np.ndarray:
    """PIL's ImageEnhance.Color: blend with the grayscale image, truncated (round(y - 0.499))."""
    gray = cv2.cvtColor(gray_l(arr), cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(arr, float(factor), gray, 1.0 - float(factor), -0.499)


def adjust_hue(arr: np.ndarray, factor: float) -> np.ndarray:
    """torchvision's PIL hue: shift H by int(factor * 255) steps of a 255-step circle (mod 256 as
    PIL's uint8 wraps), here on OpenCV's 256-step full-range H."""
    shift = int(np.int32(factor * 255).astype(np.uint8))
    if shift == 0:
        return arr
    hsv = cv2.cvtColor(arr, cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 0] += np.uint8(shift)  # uint8 wrap-around, as torchvision's PIL path
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)


def color_jitter(arr: np.ndarray, params) -> np.ndarray:
    """ColorJitter's sampled (order, brightness, contrast, saturation, hue) in that random order."""
    order, b, c, s, h = params
    for fn in order.tolist():
        if fn == 0 and b is not None:
            arr = adjust_brightness(arr, b)
        elif fn == 1 and c is not None:
            arr = adjust_contrast(arr, c)
        elif fn == 2 and s is not None:
            arr = adjust_saturation(arr, s)
        elif fn == 3 and h is not None:
            arr = adjust_hue(arr, h)
    return arr


def grayscale(arr: np.ndarray) -> np.ndarray:
    """torchvision's rgb_to_grayscale(num_output_channels=3) on PIL: L replicated to 3 channels."""
    return cv2.cvtColor(gray_l(arr), cv2.COLOR_GRAY2RGB)


def blur(arr: np.ndarray, sigma: float, radius: int = 11) -> np.ndarray:
    """The reference's GaussianBlur(22): 23-tap kernel, reflection padding, on x/255 in float32,
    then x*255 truncated to bytes."""
    if radius >= min(arr.shape[:2]):
        raise ValueError(f"reflection padding of {radius} px needs an image larger than {radius} px "
                         f"(got {arr.shape[1]}x{arr.shape[0]})")
    k = gaussian_kernel1d(sigma, radius, flush_subnormal=True).numpy()
    nz = np.flatnonzero(k)
    k = k[nz[0]:nz[-1] + 1]  # zero taps add exact zeros: drop them (symmetric, so still centred)
    out = cv2.sepFilter2D(arr, cv2.CV_32F, k, k, borderType=cv2.BORDER_REFLECT_101)
    return out.astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _rgb_lut() -> np.ndarray:
    """[3, 256] float32: level -> (level / 255 - mean) / std, computed by colorspace.normalize itself."""
    levels = torch.arange(256, dtype=torch.float32).div_(255.0).repeat(3, 1).view(3, 1, 256)
    return normalize(levels, "RGB").view(3, 256).numpy()


def to_normalized_rgb(arr: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 (or NxHxWx3) -> float32 [3,H,W] (or [N,3,H,W]) as ToTensor + Normalize(ImageNet)."""
    lut = _rgb_lut()
    lead = arr.shape[:-3]
    planes = cv2.split(np.ascontiguousarray(arr).reshape(-1, arr.shape[-2], 3))
    out = torch.from_numpy(np.stack([cv2.LUT(p, lut[c]) for c, p in enumerate(planes)]))
    if not lead:
        return out
    return out.view(3, *lead, *arr.shape[-3:-1]).movedim(0, -3).contiguous()
