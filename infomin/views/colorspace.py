"""Colour-space conversions used by CMC-style views, in torch, matching scikit-image's definitions.

The reference converts the augmented uint8 view with scikit-image (``rgb2ydbdr`` for CMC) and then
normalises per space. These functions compute the same numbers on float tensors shaped
``[..., 3, H, W]`` (batches and GPUs welcome), so the view pipeline and view-learning code can convert
without a round trip through NumPy. ``tests/test_views_colorspace.py`` checks each one against
scikit-image.

Normalisation (mean, std per channel, in each space's own units): RGB uses the ImageNet statistics;
YDbDr uses PyContrast's CMC values; Lab and YCbCr use the CMC repository's values; every other space
maps its range over the sRGB cube to [-1, 1] (mean = mid-range, std = half-range), which is how CMC
built its Lab numbers.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from skimage.color import hed_from_rgb

__all__ = ["SPACES", "NORMALIZATION", "canonical", "to_float_rgb", "convert", "normalize", "to_normalized_tensor"]

_MATRICES = {
    # rows: output channel; columns: R, G, B in [0, 1] (scikit-image's published matrices)
    "YCbCr": ([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], (16.0, 128.0, 128.0)),
    "YDbDr": ([[0.299, 0.587, 0.114], [-0.45, -0.883, 1.333], [-1.333, 1.116, 0.217]], None),
    "YPbPr": ([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], None),
    "YIQ": ([[0.299, 0.587, 0.114], [0.59590059, -0.27455667, -0.32134392],
             [0.21153661, -0.52273617, 0.31119955]], None),
    "YUV": ([[0.299, 0.587, 0.114], [-0.14714119, -0.28886916, 0.43601035],
             [0.61497538, -0.51496512, -0.10001026]], None),
}
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_XYZ_FROM_RGBCIE = np.array([[0.49, 0.31, 0.20], [0.17697, 0.81240, 0.01063], [0.00, 0.01, 0.99]]) / 0.17697
_RGBCIE_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGBCIE)
_WHITE_D65 = (0.95047, 1.0, 1.08883)  # CIE 1931 2-degree observer, as scikit-image's default

SPACES = ("RGB", "Lab", "LUV", "XYZ", "CIERGB", "YCbCr", "YDbDr", "YPbPr", "YIQ", "YUV", "HSV", "HED")

NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "RGB": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "YDbDr": ((0.457, -0.082, -0.052), (0.500, 1.331, 1.333)),
    "Lab": ((50.0, 6.025, -6.6895), (50.0, 92.208, 101.1675)),
    "YCbCr": ((116.151, 121.080, 132.342), (109.500, 111.855, 111.964)),
    "LUV": ((50.0, 45.9683, -13.3494), (50.0, 129.0462, 120.7484)),
    "XYZ": ((0.4752, 0.5, 0.5444), (0.4752, 0.5, 0.5444)),
    "CIERGB": ((0.0744, 0.0914, 0.0964), (0.0891, 0.0914, 0.0964)),
    "YPbPr": ((0.5, 0.0, 0.0), (0.5, 0.5, 0.5)),
    "YIQ": ((0.5, 0.0, 0.0), (0.5, 0.5959, 0.5227)),
    "YUV": ((0.5, 0.0, 0.0), (0.5, 0.436, 0.615)),
    "HSV": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "HED": ((0.939, 0.5674, 0.7868), (0.939, 0.5674, 0.7868)),
}
_CANON = {s.lower(): s for s in SPACES}


def canonical(space: str) -> str:
    """Case-insensitive space name -> canonical spelling; unknown names raise ValueError."""
    try:
        return _CANON[str(space).lower()]
    except KeyError:
        raise ValueError(f"unknown colour space {space!r}; choose one of {', '.join(SPACES)}") from None


def to_float_rgb(image) -> torch.Tensor:
    """PIL image, uint8 tensor/array [...,3,H,W] (arrays: HxWx3) or float tensor in [0,1] -> float [...,3,H,W]."""
    if isinstance(image, Image.Image):
        image = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"a NumPy image must be HxWx3, got shape {image.shape}")
        image = torch.from_numpy(np.array(image)).permute(2, 0, 1)  # a copy: read-only arrays are fine
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected a PIL image, an HxWx3 array or a [...,3,H,W] tensor, got {type(image).__name__}")
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"expected a [..., 3, H, W] RGB tensor, got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.float().div_(255.0)
    if not image.is_floating_point():
        raise TypeError(f"RGB tensors must be uint8 or float in [0, 1], got {image.dtype}")
    return image


def _mix(matrix, x: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(matrix), dtype=x.dtype, device=x.device)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def _channel(values, x):
    return torch.as_tensor(values, dtype=x.dtype, device=x.device).view(3, 1, 1)


def _xyz(rgb):
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)
    return _mix(_XYZ_FROM_RGB, lin)


def _lab(rgb):
    t = _xyz(rgb) / _channel(_WHITE_D65, rgb)
    f = torch.where(t > 0.008856, t.clamp_min(0).pow(1.0 / 3.0), 7.787 * t + 16.0 / 116.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def _luv(rgb):
    x, y, z = _xyz(rgb).unbind(-3)
    xn, yn, zn = _WHITE_D65
    yr = y / yn
    L = torch.where(yr > 0.008856, 116.0 * yr.clamp_min(0).pow(1.0 / 3.0) - 16.0, 903.3 * yr)
    eps = torch.finfo(rgb.dtype).eps
    denom = x + 15.0 * y + 3.0 * z + eps
    wden = xn + 15.0 * yn + 3.0 * zn
    u = 13.0 * L * (4.0 * x / denom - 4.0 * xn / wden)
    v = 13.0 * L * (9.0 * y / denom - 9.0 * yn / wden)
    return torch.stack([L, u, v], dim=-3)


def _hsv(rgb):
    r, g, b = rgb.unbind(-3)
    v, _ = rgb.max(dim=-3)
    delta = v - rgb.min(dim=-3).values
    flat = delta == 0
    safe = torch.where(flat, torch.ones_like(delta), delta)
    s = torch.where(flat, torch.zeros_like(delta), delta / torch.where(v == 0, torch.ones_like(v), v))
    # scikit-image assigns red-max, then green-max, then blue-max: later ones win ties
    h = torch.where(b == v, 4.0 + (r - g) / safe, torch.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    h = torch.remainder(h / 6.0, 1.0)
    h = torch.where(flat, torch.zeros_like(h), h)
    return torch.stack([h, s, v], dim=-3)


def _hed(rgb):
    od = torch.log(rgb.clamp_min(1e-6)) / np.log(1e-6)
    return _mix(np.asarray(hed_from_rgb).T, od).clamp_min(0)


def convert(image, space: str) -> torch.Tensor:
    """Convert RGB (PIL, uint8 or float in [0, 1]) to ``space``; same units as scikit-image's rgb2*."""
    space = canonical(space)
    rgb = to_float_rgb(image)
    if space == "RGB":
        return rgb
    if space in _MATRICES:
        matrix, offset = _MATRICES[space]
        out = _mix(matrix, rgb)
        return out + _channel(offset, rgb) if offset is not None else out
    if space == "XYZ":
        return _xyz(rgb)
    if space == "CIERGB":  # scikit-image applies the matrix to gamma-encoded RGB
        return _mix(_RGBCIE_FROM_XYZ @ _XYZ_FROM_RGB, rgb)
    return {"Lab": _lab, "LUV": _luv, "HSV": _hsv, "HED": _hed}[space](rgb)


def normalize(x: torch.Tensor, space: str, inplace: bool = False) -> torch.Tensor:
    """(x - mean) / std with the space's NORMALIZATION constants."""
    mean, std = NORMALIZATION[canonical(space)]
    if not inplace:
        x = x.clone()
    return x.sub_(_channel(mean, x)).div_(_channel(std, x))


def to_normalized_tensor(image, space: str = "RGB") -> torch.Tensor:
    """What the reference's ``color_transfer -> ToTensor -> Normalize`` gives, as float32."""
    space = canonical(space)
    if space == "RGB":
        x = to_float_rgb(image)
        if not x.is_floating_point() or x.dtype != torch.float32:
            x = x.float()
        return normalize(x, space, inplace=x is not image)
    return normalize(convert(image, space).float(), space, inplace=True)
