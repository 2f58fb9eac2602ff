"""Gaussian blur as the reference does it, and a fast equal-output version for the view pipeline.

Reference ``GaussianBlur(22)`` (PyContrast ``datasets/util.py``): radius 11, a 23-tap 1-D Gaussian
normalised to sum 1 with sigma ~ U(0.1, 2.0) per call, reflection padding, a vertical then a
horizontal depthwise convolution on the image scaled to [0, 1], then ``ToPILImage`` which truncates
``x * 255`` to bytes. :class:`GaussianBlur` does exactly that (PIL in, PIL out). :func:`blur_uint8`
computes the same sums as batched band-matrix products and drops subnormal kernel taps (exactly
zero contribution, but very slow arithmetic), several times faster than the reference on a CPU.

Sigma is drawn from torch's RNG (the reference used NumPy's unseeded global state, pitfall 1).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

__all__ = ["gaussian_kernel1d", "blur_uint8", "GaussianBlur", "PILGaussianBlur", "sample_sigma"]


def sample_sigma(sigma_range=(0.1, 2.0)) -> float:
    return float(torch.empty(1).uniform_(sigma_range[0], sigma_range[1]).item())


def gaussian_kernel1d(sigma: float, radius: int, flush_subnormal: bool = False) -> torch.Tensor:
    """Normalised 1-D Gaussian of 2*radius+1 taps (float32).

    With ``flush_subnormal`` taps below float32's smallest normal number are set to 0: they cannot
    change any float32 sum, but computing with subnormal floats is ~10-100x slower on most CPUs.
    """
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-x.pow(2) / (2.0 * sigma * sigma))
    k = k / k.sum()
    if flush_subnormal:
        k = torch.where(k < torch.finfo(torch.float32).tiny, torch.zeros_like(k), k)
    return k


_BLOCK = 32


@functools.lru_cache(maxsize=8)
def _band_layout(n: int, radius: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reflect-padded source rows for n outputs in blocks, and the band's (row, col) positions."""
    if radius >= n:
        raise ValueError(f"reflection padding of {radius} px needs an image larger than {radius} px (got {n})")
    total = math.ceil(n / _BLOCK) * _BLOCK
    src = torch.arange(-radius, total + radius)
    src = torch.where(src < 0, -src, src)
    src = torch.where(src > n - 1, 2 * (n - 1) - src, src).clamp_(0, n - 1)  # rows past n only feed dropped outputs
    rows = torch.arange(_BLOCK).repeat_interleave(2 * radius + 1)
    cols = rows + torch.arange(2 * radius + 1).repeat(_BLOCK)
    return src, rows, cols


def _blur_rows(t: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """conv1d(reflect_pad(t), kernel) along dim 0 of a 2-D tensor, as batched band-matrix products."""
    n, m = t.shape
    radius = (kernel.numel() - 1) // 2
    src, rows, cols = _band_layout(n, radius)
    band = torch.zeros(_BLOCK, _BLOCK + 2 * radius)
    band[rows, cols] = kernel.repeat(_BLOCK)
    windows = t.index_select(0, src).unfold(0, _BLOCK + 2 * radius, _BLOCK)  # [blocks, m, BLOCK + 2r]
    out = torch.matmul(windows, band.t())  # [blocks, m, BLOCK]
    return out.permute(0, 2, 1).reshape(-1, m)[:n]


def blur_uint8(img: np.ndarray | torch.Tensor, sigma: float, radius: int = 11) -> torch.Tensor:
    """Blur an HxWxC uint8 image like the reference's GaussianBlur; returns HxWxC uint8 (torch).

    Same arithmetic as the reference (scale to [0, 1], vertical then horizontal pass, x255, truncate);
    only the summation order differs, so a pixel rarely lands one level apart.
    """
    x = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.array(img, dtype=np.uint8))
    h, w, c = x.shape
    k = gaussian_kernel1d(sigma, radius, flush_subnormal=True)
    t = x.float().div_(255.0)  # as ToTensor scales it
    t = _blur_rows(t.view(h, w * c), k).view(h, w, c)  # vertical pass
    t = _blur_rows(t.transpose(0, 1).reshape(w, h * c), k).view(w, h, c)  # horizontal pass
    return t.mul_(255.0).to(torch.uint8).transpose(0, 1).contiguous()  # truncation, as ToPILImage does


class GaussianBlur:
    """The reference's ``GaussianBlur(22)``: PIL -> tensor -> 2 depthwise convs -> PIL (truncating)."""

    def __init__(self, kernel_size: int = 22, sigma=(0.1, 2.0)):
        self.radius = kernel_size // 2
        self.sigma = tuple(sigma)

    def __call__(self, img: Image.Image, sigma: float | None = None) -> Image.Image:
        sigma = sample_sigma(self.sigma) if sigma is None else sigma
        k = gaussian_kernel1d(sigma, self.radius)
        x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        c = x.shape[1]
        x = F.pad(x, (self.radius,) * 4, mode="reflect")
        x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        out = x.squeeze(0).mul(255).byte().permute(1, 2, 0).numpy()
        return Image.fromarray(out)

    def __repr__(self):
        return f"{type(self).__name__}(kernel={2 * self.radius + 1}, sigma={self.sigma})"


class PILGaussianBlur:
    """The reference's ``GaussianBlur2`` (policy B): PIL's GaussianBlur with radius sigma ~ U(0.1, 2)."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = tuple(sigma)

    def __call__(self, img: Image.Image, sigma: float | None = None) -> Image.Image:
        sigma = sample_sigma(self.sigma) if sigma is None else sigma
        return img.filter(ImageFilter.GaussianBlur(radius=sigma))

    def __repr__(self):
        return f"{type(self).__name__}(sigma={self.sigma})"
