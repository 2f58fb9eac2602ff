"""Batched view ops on any device, each with its own parameter per sample (``DATA.LOADER gpu``).

Images are float32 ``[N, 3, H, W]`` tensors holding whole grey levels 0..255 ("levels"): every op
quantises its output the way PIL quantises its own (truncation for blends, rounding for filters and
resampling), so a chain of ops stays close to the reference's uint8 chain and RandAugment's
threshold ops (Solarize, Posterize, Equalize) see the levels PIL would. Where PIL's definition is
integer arithmetic (luma, blends, Equalize, AutoContrast, Posterize, the box blur of policy B) it is
reproduced exactly, the hue shift too (PIL's 8-bit HSV; kornia's float HSV was up to 14 levels off);
crops use torch's antialiased bilinear resize and RandAugment's warps sample like PIL's affine
transform. ``docs/views.md`` lists the measured differences from PIL (``tests/test_views_device.py``
bounds each).

Per-sample scalars are 1-D tensors (or sequences) of length N on any device.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["levels", "to_uint8", "resized_crops", "flip", "luma", "blend", "brightness", "contrast",
           "saturation", "hue", "grayscale", "conv_blur", "pil_blur", "autocontrast", "equalize", "invert",
           "posterize", "solarize", "solarize_add", "sharpness", "affine", "rotate_matrices", "cut_tiles"]


def _col(values, x: torch.Tensor) -> torch.Tensor:
    """Per-sample scalars -> [N, 1, 1, 1] on x's device and dtype."""
    return torch.as_tensor(values, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)


def levels(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 levels."""
    return images.float()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 255).to(torch.uint8)


def _trunc(x: torch.Tensor) -> torch.Tensor:
    """PIL's float -> byte for blends: clip to [0, 255], then truncate."""
    return x.clamp_(0, 255).floor_()


def _round(x: torch.Tensor) -> torch.Tensor:
    """PIL's float -> byte for filters and resampling: round half up, clip."""
    return x.add_(0.5).floor_().clamp_(0, 255)


# -- geometry -------------------------------------------------------------------------------------
def resized_crops(images, boxes, size: int) -> torch.Tensor:
    """Crop each box (top, left, height, width) of its image ([3, H, W], uint8 or levels; images
    may differ in size) and resize to size x size with antialiased bilinear, as PIL resizes."""
    out = []
    for img, (top, left, h, w) in zip(images, boxes):
        crop = img[None, :, top:top + h, left:left + w].float()
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True))
    return _round(torch.cat(out)) if out else torch.empty(0, 3, size, size)


def flip(x: torch.Tensor, flipped) -> torch.Tensor:
    """Mirror the samples where ``flipped`` (bool per sample) is set."""
    mask = torch.as_tensor(flipped, dtype=torch.bool, device=x.device)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def cut_tiles(x: torch.Tensor, origins: torch.Tensor, tile: int) -> torch.Tensor:
    """[N, C, S, S] crops, origins [N, T, 2] (top, left) -> tiles [N, T, C, tile, tile]."""
    n, c = x.shape[:2]
    ar = torch.arange(tile, device=x.device)
    rows = (origins[..., 0, None] + ar).to(x.device)  # [N, T, tile]
    cols = (origins[..., 1, None] + ar).to(x.device)
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    # gather [N, T, tile(rows), tile(cols)] per channel
    out = x.permute(0, 2, 3, 1)[idx_n, rows[:, :, :, None], cols[:, :, None, :]]  # [N, T, tile, tile, C]
    return out.permute(0, 1, 4, 2, 3).contiguous()


# -- colour (PIL's definitions) ----------------------------------------------------------------------
def luma(x: torch.Tensor) -> torch.Tensor:
    """PIL's "L": (19595 R + 38470 G + 7471 B + 32768) >> 16, exact in float32 (< 2**24)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.floor((r * 19595 + g * 38470 + b * 7471 + 32768) / 65536)


def blend(degenerate: torch.Tensor, x: torch.Tensor, factor) -> torch.Tensor:
    """PIL's Image.blend(degenerate, x, factor) in float32, truncated (ImageEnhance's core)."""
    f = _col(factor, x)
    return _trunc(degenerate + f * (x - degenerate))


def brightness(x, factor):
    return blend(torch.zeros_like(x), x, factor)


def contrast(x, factor):
    """Blend with the grey image of the rounded mean luma (ImageEnhance.Contrast)."""
    mean = luma(x).double().mean(dim=(1, 2, 3), keepdim=True)
    return blend(torch.floor(mean + 0.5).float().expand_as(x), x, factor)


def saturation(x, factor):
    return blend(luma(x).expand_as(x), x, factor)


def _pil_rgb_to_hsv(x: torch.Tensor):
    """PIL's RGB -> HSV (Convert.c rgb2hsv_row), float32/float64 steps as in its C code."""
    r, g, b = x[:, 0].double(), x[:, 1].double(), x[:, 2].double()
    maxc, minc = torch.maximum(r, torch.maximum(g, b)), torch.minimum(r, torch.minimum(g, b))
    grey = maxc == minc
    f32 = lambda t: t.float().double()  # noqa: E731  (a C float temporary)
    cr = torch.where(grey, torch.ones_like(maxc), maxc - minc)
    s = f32(cr / torch.where(grey, torch.ones_like(maxc), maxc))
    rc, gc, bc = f32((maxc - r) / cr), f32((maxc - g) / cr), f32((maxc - b) / cr)
    h = torch.where(r == maxc, f32(bc - gc), torch.where(g == maxc, f32(2.0 + rc - bc), f32(4.0 + gc - rc)))
    h = f32(torch.fmod(h / 6.0 + 1.0, 1.0))
    uh = torch.where(grey, 0, torch.trunc(h * 255.0).clamp(0, 255))
    us = torch.where(grey, 0, torch.trunc(s * 255.0).clamp(0, 255))
    return uh, us, maxc


def _pil_hsv_to_rgb(h, s, v) -> torch.Tensor:
    """PIL's HSV -> RGB (Convert.c hsv2rgb), C round() = half away from zero (values >= 0)."""
    i = torch.floor(h * 6.0 / 255.0)
    f = (h * 6.0 / 255.0 - i).float().double()
    fs = (s / 255.0).float().double()
    rnd = lambda t: torch.floor(t + 0.5).clamp(0, 255)  # noqa: E731
    p, q, t = rnd(v * (1.0 - fs)), rnd(v * (1.0 - fs * f)), rnd(v * (1.0 - fs * (1.0 - f)))
    sector = torch.remainder(i, 6).long()
    table = torch.stack([torch.stack(c, 0) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    rgb = table.gather(0, sector[None, None].expand(1, 3, *sector.shape)).squeeze(0)  # [3, N, H, W]
    rgb = torch.where((s == 0)[None], v[None].expand_as(rgb), rgb)
    return rgb.permute(1, 0, 2, 3).float()


def hue(x, factor):
    """torchvision's adjust_hue on PIL: PIL's 8-bit HSV, H shifted by int(factor * 255) steps with
    uint8 wrap-around, back to RGB; PIL's integer/float steps reproduced."""
    h, s, v = _pil_rgb_to_hsv(x)
    steps = torch.as_tensor(np.asarray([int(np.int32(f * 255)) for f in np.asarray(factor, dtype=np.float64)]),
                            dtype=torch.float64, device=x.device).view(-1, 1, 1)
    return _pil_hsv_to_rgb(torch.remainder(h + steps, 256), s, v)


def grayscale(x):
    return luma(x).expand_as(x).clone()


# -- blurs ----------------------------------------------------------------------------------------------
def conv_blur(x, sigmas, radius: int = 11) -> torch.Tensor:
    """The reference's GaussianBlur(22): [0, 1] image, reflect padding, vertical then horizontal
    23-tap pass with a kernel per sample, x255 truncated (the same conv2d calls as the reference)."""
    from .blur import gaussian_kernel1d

    n, c, h, w = x.shape
    k = torch.stack([gaussian_kernel1d(float(s), radius) for s in sigmas]).to(x.device)  # [N, K]
    k = k.repeat_interleave(c, 0)  # [N*C, K]
    t = F.pad((x / 255.0).reshape(1, n * c, h, w), (radius,) * 4, mode="reflect")
    t = F.conv2d(t, k.view(n * c, 1, -1, 1), groups=n * c)
    t = F.conv2d(t, k.view(n * c, 1, 1, -1), groups=n * c)
    return _trunc(t.view(n, c, h, w) * 255.0)


def _box_radius(sigma: float, passes: int = 3) -> float:
    """PIL's _gaussian_blur_radius in C float arithmetic."""
    f = np.float32
    sigma2 = f(f(sigma) * f(sigma) / f(passes))
    big_l = f(math.sqrt(f(12.0) * sigma2 + f(1.0)))
    small_l = f(math.floor((big_l - f(1.0)) / f(2.0)))
    a = f((f(2) * small_l + f(1)) * (small_l * (small_l + f(1)) - f(3) * sigma2))
    a = f(a / f(f(6) * (sigma2 - (small_l + f(1)) * (small_l + f(1)))))
    return float(f(small_l + a))


def _box_kernels(sigmas) -> tuple[torch.Tensor, int]:
    """Per-sample extended-box kernels in PIL's 24-bit fixed point (ww inside, fw at the ends)."""
    specs = []
    for s in sigmas:
        r = _box_radius(float(s))
        ri = int(r)
        ww = int(np.float32(1 << 24) / np.float32(np.float32(r) * np.float32(2) + np.float32(1)))
        fw = ((1 << 24) - (ri * 2 + 1) * ww) // 2
        specs.append((ri, ww, fw))
    pad = max(ri for ri, _, _ in specs) + 1
    k = torch.zeros(len(specs), 2 * pad + 1, dtype=torch.float64)
    for i, (ri, ww, fw) in enumerate(specs):
        k[i, pad - ri:pad + ri + 1] = ww
        k[i, pad - ri - 1] = k[i, pad + ri + 1] = fw
    return k, pad


def pil_blur(x, sigmas, passes: int = 3) -> torch.Tensor:
    """PIL's GaussianBlur(radius=sigma) (policy B): ``passes`` extended box blurs along rows, then
    along columns, each rounded to bytes, edges replicated; PIL's integer arithmetic, exact."""
    n, c, h, w = x.shape
    k, pad = _box_kernels(sigmas)
    k = k.repeat_interleave(c, 0).to(x.device).unsqueeze(1)  # [N*C, 1, K]

    def rows(t):  # t: [N, C, A, B], blur along B
        a, b = t.shape[2], t.shape[3]
        line = t.permute(2, 0, 1, 3).reshape(a, n * c, b)
        for _ in range(passes):
            line = F.conv1d(F.pad(line, (pad, pad), mode="replicate"), k, groups=n * c)
            line = torch.floor((line + (1 << 23)) / (1 << 24))
        return line.reshape(a, n, c, b).permute(1, 2, 0, 3)

    t = rows(x.double())
    t = rows(t.transpose(2, 3)).transpose(2, 3)
    return t.float().contiguous()


# -- RandAugment's ops (timm calls PIL's ImageOps / ImageEnhance / Image.transform) ---------------------
def autocontrast(x):
    """ImageOps.autocontrast(cutoff=0): per channel, lut = int(i * scale + offset) in float64."""
    xd = x.double()
    lo = xd.amin(dim=(2, 3), keepdim=True)
    hi = xd.amax(dim=(2, 3), keepdim=True)
    flat = hi <= lo
    scale = 255.0 / torch.where(flat, torch.ones_like(hi), hi - lo)
    offset = -lo * scale
    out = torch.floor(xd * scale + offset).clamp(0, 255)
    return torch.where(flat, xd, out).float()


def equalize(x):
    """ImageOps.equalize (Pillow >= 9.1): per channel, step = (pixels - count of the last used
    level) // 255, then lut[i] = (step // 2 + pixels below i) // step (identity when step is 0 or
    one level is used), exact integers."""
    n, c, h, w = x.shape
    v = x.long().view(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    last = (hist > 0).long().cumsum(1).argmax(1)  # index of the last non-zero bin
    step = (h * w - hist.gather(1, last[:, None]).squeeze(1)) // 255
    used = (hist > 0).sum(1)
    below = torch.cumsum(hist, 1) - hist
    safe = step.clamp(min=1)[:, None]
    lut = ((safe // 2 + below) // safe).clamp(max=255)
    identity = ((step == 0) | (used <= 1))[:, None]
    lut = torch.where(identity, torch.arange(256, device=x.device).expand_as(lut), lut)
    return lut.gather(1, v).view(n, c, h, w).float()


def invert(x):
    return 255.0 - x


def posterize(x, bits):
    """Keep the top ``bits`` bits of each level (0 bits: black, as the reference's Pillow did)."""
    drop = (8 - torch.as_tensor(bits, device=x.device).long().clamp(0, 8)).view(-1, 1, 1, 1)
    return ((x.long() >> drop) << drop).float()


def solarize(x, thresholds):
    t = _col(thresholds, x)
    return torch.where(x < t, x, 255.0 - x)


def solarize_add(x, add, threshold: int = 128):
    return torch.where(x < threshold, (x + _col(add, x)).clamp(max=255.0), x)


_SMOOTH = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0


def sharpness(x, factor):
    """ImageEnhance.Sharpness: blend with PIL's SMOOTH filter (3x3, rounded, border pixels kept)."""
    n, c, h, w = x.shape
    k = _SMOOTH.to(x.device, x.dtype).view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = _round(F.conv2d(x, k, groups=c))
    return blend(smooth, x, factor)


def rotate_matrices(degrees, width: int, height: int) -> list[tuple[float, ...]]:
    """PIL's Image.rotate(angle) as the affine matrix Image.transform receives (centre of the image)."""
    out = []
    cx, cy = width / 2.0, height / 2.0
    for d in degrees:
        a = -math.radians(float(d))
        m = [round(math.cos(a), 15), round(math.sin(a), 15), 0.0, round(-math.sin(a), 15), round(math.cos(a), 15), 0.0]
        m[2] = m[0] * -cx + m[1] * -cy + cx
        m[5] = m[3] * -cx + m[4] * -cy + cy
        out.append(tuple(m))
    return out


def _cubic_weights(d: torch.Tensor) -> list[torch.Tensor]:
    """PIL's transform bicubic (Geometry.c BICUBIC: the a = -1 cubic) weights for taps -1..2."""
    return [-d + 2 * d ** 2 - d ** 3, 1 - 2 * d ** 2 + d ** 3, d + d ** 2 - d ** 3, -d ** 2 + d ** 3]


def affine(x, matrices, bicubic, fill) -> torch.Tensor:
    """PIL's Image.transform(size, AFFINE, matrix, BILINEAR|BICUBIC, fillcolor) per sample: output
    pixel centre (x+.5, y+.5) maps to (a x + b y + c, d x + e y + f); points outside the image get
    ``fill``; neighbours past the border are clamped; the result is rounded to levels."""
    n, c, h, w = x.shape
    dev = x.device
    m = torch.as_tensor(np.asarray(matrices, dtype=np.float64), device=dev).view(n, 6, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float64) + 0.5,
                            torch.arange(w, device=dev, dtype=torch.float64) + 0.5, indexing="ij")
    xin = m[:, 0] * xs + m[:, 1] * ys + m[:, 2]  # [N, H, W]
    yin = m[:, 3] * xs + m[:, 4] * ys + m[:, 5]
    outside = (xin < 0) | (yin < 0) | (xin >= w) | (yin >= h)
    xf, yf = xin - 0.5, yin - 0.5
    x0, y0 = torch.floor(xf), torch.floor(yf)
    dx, dy = xf - x0, yf - y0
    x0, y0 = x0.long(), y0.long()
    flat = x.double().reshape(n, c, h * w)

    def tap(yy, xx):  # [N, C, H, W] values at clamped integer positions
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
        return flat.gather(2, idx).view(n, c, h, w)

    cubic = torch.as_tensor(bicubic, dtype=torch.bool, device=dev).view(n, 1, 1, 1)
    dxe, dye = dx[:, None], dy[:, None]
    lin = (tap(y0, x0) * (1 - dxe) + tap(y0, x0 + 1) * dxe) * (1 - dye) \
        + (tap(y0 + 1, x0) * (1 - dxe) + tap(y0 + 1, x0 + 1) * dxe) * dye
    out = lin
    if bool(cubic.any()):
        wx, wy = _cubic_weights(dxe), _cubic_weights(dye)
        cub = sum(wy[j] * sum(wx[i] * tap(y0 + j - 1, x0 + i - 1) for i in range(4)) for j in range(4))
        out = torch.where(cubic, cub, lin)
    out = _trunc(out).float()
    fill_t = torch.as_tensor(fill, dtype=torch.float32, device=dev).view(1, c, 1, 1)
    return torch.where(outside[:, None], fill_t, out)
