"""Fast multi-view pipeline: the reference's random draws, in its order, with less work per view.

What makes it faster than composing torchvision/PIL transforms per view, while keeping each view's
distribution the reference's:

* every view's crop box, flip and photometric parameters are drawn *before* decoding, in the
  reference's order, so a JPEG can be decoded once at a reduced DCT scale (PIL ``draft``) whenever
  every crop of this sample (two views, jigsaw) is still downscaled (a reduced-size decode instead
  of a full one before the same antialiased PIL resize); ``fast_decode=False`` turns it off; pass
  the image lazily opened (``Image.open(path)``, not ``.convert("RGB")``) or a path to use it;
* ``backend="cv2"`` (default): colour jitter, the conv blur, grayscale and ToTensor/Normalize run
  as OpenCV kernels on the uint8 view (:mod:`infomin.views.cvops`) with the sampled parameters;
  pixels are within about a level of PIL's (the hue round trip rounds where PIL truncates), so
  views are the reference's in distribution, not bit for bit. RandAugment stays timm's, on PIL;
* ``backend="pil"``: the stock torchvision/PIL/timm ops, so given the same seeds the views are the
  reference pipeline's pixels (the blur as band-matrix products may move a rare pixel one level);
* tensors are built once per view; jigsaw tiles are sliced from one crop and normalised together.

Crop geometry (PIL's antialiased bilinear resize) is the same in both backends.

Randomness comes from torch's global RNG (crop, flip, jitter, blur, grayscale, jigsaw offsets) and,
for RandAugment, Python's ``random`` and NumPy's global RNG (timm). Seed all three per worker. Both
backends consume exactly the same random numbers. With the cv2 backend, also call
``cv2.setNumThreads(1)`` in DataLoader workers (as torch does for itself there).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from .blur import PILGaussianBlur, blur_uint8, sample_sigma
from .colorspace import canonical, to_normalized_tensor
from .jigsaw import JigsawSpec, cut_tiles, sample_offsets, tile_origins
from .policies import Policy, apply_overrides
from .randaugment import build_randaugment
from .reference import default_ra_ops

__all__ = ["ViewParams", "MultiViewTransform", "build_multiview_transform", "build_eval_transform",
           "build_linear_train_transform", "open_image"]

_BILINEAR = Image.Resampling.BILINEAR
_FLIP = Image.Transpose.FLIP_LEFT_RIGHT


@dataclass
class ViewParams:
    """One view's sampled parameters (box = top, left, height, width in original pixels)."""

    box: tuple[int, int, int, int]
    flip: bool
    jitter: tuple | None = None  # (fn_order, brightness, contrast, saturation, hue), as ColorJitter.get_params
    blur_sigma: float | None = None
    grayscale: bool = False


@dataclass
class JigsawParams:
    box: tuple[int, int, int, int]
    flip: bool
    offsets: torch.Tensor


def open_image(source) -> Image.Image:
    """A lazily opened PIL image (decoding deferred so the pipeline can pick a reduced JPEG scale)."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, os.PathLike)):
        return Image.open(source)
    raise TypeError(f"expected a PIL image or a path, got {type(source).__name__}")


#: "cv2": photometric ops with OpenCV (same parameters, pixels within a level or so of PIL's; the
#: default); "pil": the stock torchvision/PIL ops, the reference's pixels given the same seeds.
BACKENDS = ("cv2", "pil")


def _require_cv2() -> None:
    try:
        import cv2  # noqa: F401
    except ImportError as e:
        raise ImportError("backend='cv2' needs OpenCV: pip install opencv-python-headless "
                          "(see requirements.txt), or pass backend='pil'") from e


def _fired(p: float) -> bool:
    """torchvision's RandomApply test (draws nothing when the op always applies)."""
    return True if p >= 1.0 else not (p < torch.rand(1))


class MultiViewTransform:
    """Callable(PIL image or path) -> {"view1", "view2"[, "jigsaw"]} float tensors, normalised."""

    def __init__(self, policy: Policy, color_space: str = "RGB", jigsaw: JigsawSpec | None = None,
                 views: int = 2, ra_ops: str | None = None, fast_decode: bool = True, backend: str = "cv2"):
        if views not in (1, 2):
            raise ValueError(f"views={views}: a multi-view transform makes 1 or 2 views per image")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: choose one of {BACKENDS} ('pil' = the reference's pixels)")
        if backend == "cv2":
            _require_cv2()
        self.backend = backend
        self.policy = policy
        self.color_space = canonical(color_space)
        self.jigsaw = jigsaw
        self.views = views
        self.fast_decode = fast_decode
        self.ra_ops = ra_ops or default_ra_ops(self.color_space)
        self._jitter = T.ColorJitter(*policy.jitter)
        self._ra = (build_randaugment(policy.randaugment, self.ra_ops, policy.image_size)
                    if "randaugment" in policy.stages else None)
        self._pil_blur = PILGaussianBlur(policy.blur_sigma)

    # -- sampling (torch RNG, reference order) -------------------------------------------------
    def sample_view(self, img: Image.Image) -> ViewParams:
        p = self.policy
        box = T.RandomResizedCrop.get_params(img, [p.crop_min, p.crop_max], list(p.ratio))
        params = ViewParams(box=tuple(int(v) for v in box), flip=bool(torch.rand(1) < p.flip_prob))
        for stage in p.stages:
            if stage == "jitter" and _fired(p.jitter_prob):
                j = self._jitter
                params.jitter = T.ColorJitter.get_params(j.brightness, j.contrast, j.saturation, j.hue)
            elif stage == "blur" and _fired(p.blur_prob):
                params.blur_sigma = sample_sigma(p.blur_sigma)
            elif stage == "grayscale":
                params.grayscale = bool(torch.rand(1) < p.grayscale_prob)
        return params

    def sample_jigsaw(self, img: Image.Image) -> JigsawParams:
        s = self.jigsaw
        box = T.RandomResizedCrop.get_params(img, list(s.scale), [3.0 / 4.0, 4.0 / 3.0])
        flip = bool(torch.rand(1) < s.flip_prob)
        return JigsawParams(tuple(int(v) for v in box), flip, sample_offsets(s))

    # -- rendering -------------------------------------------------------------------------------
    @staticmethod
    def _resized_crop(img: Image.Image, box, size: int, scale: int) -> Image.Image:
        top, left, h, w = box
        if scale == 1:  # exactly torchvision's resized_crop on PIL
            return img.crop((left, top, left + w, top + h)).resize((size, size), _BILINEAR)
        return img.resize((size, size), _BILINEAR, box=(left / scale, top / scale, (left + w) / scale,
                                                        (top + h) / scale))

    def render_view(self, img: Image.Image, params: ViewParams, scale: int = 1) -> torch.Tensor:
        p = self.policy
        view = self._resized_crop(img, params.box, p.image_size, scale)
        if params.flip:
            view = view.transpose(_FLIP)
        if self.backend == "cv2":
            return self._render_cv2(np.asarray(view), params)
        for stage in p.stages:
            if stage == "jitter" and params.jitter is not None:
                view = _jitter(view, params.jitter)
            elif stage == "blur" and params.blur_sigma is not None:
                if p.blur == "conv":
                    view = Image.fromarray(blur_uint8(_uint8_hwc(view), params.blur_sigma).numpy())
                else:
                    view = self._pil_blur(view, params.blur_sigma)
            elif stage == "randaugment":
                view = self._ra(view)
            elif stage == "grayscale" and params.grayscale:
                view = TF.rgb_to_grayscale(view, num_output_channels=3)
        return to_normalized_tensor(_uint8_chw(view), self.color_space)

    def _render_cv2(self, arr: np.ndarray, params: ViewParams) -> torch.Tensor:
        """The photometric stages with OpenCV on the uint8 HxWx3 view (see infomin.views.cvops)."""
        from . import cvops

        p = self.policy
        for stage in p.stages:
            if stage == "jitter" and params.jitter is not None:
                arr = cvops.color_jitter(arr, params.jitter)
            elif stage == "blur" and params.blur_sigma is not None:
                if p.blur == "conv":
                    arr = cvops.blur(arr, params.blur_sigma)
                else:
                    arr = np.asarray(self._pil_blur(Image.fromarray(arr), params.blur_sigma))
            elif stage == "randaugment":
                arr = np.asarray(self._ra(Image.fromarray(arr)))
            elif stage == "grayscale" and params.grayscale:
                arr = cvops.grayscale(arr)
        if self.color_space == "RGB":
            return cvops.to_normalized_rgb(arr)
        if not (arr.flags.writeable and arr.flags.c_contiguous):  # np.asarray(PIL image) is read-only
            arr = np.array(arr)
        return to_normalized_tensor(torch.from_numpy(arr).permute(2, 0, 1), self.color_space)

    def render_jigsaw(self, img: Image.Image, params: JigsawParams, scale: int = 1) -> torch.Tensor:
        s = self.jigsaw
        crop = self._resized_crop(img, params.box, s.crop_size, scale)
        if params.flip:
            crop = crop.transpose(_FLIP)
        if self.backend == "cv2" and self.color_space == "RGB":
            from . import cvops

            arr, t = np.asarray(crop), s.tile
            tiles = np.stack([arr[top:top + t, left:left + t] for top, left in tile_origins(params.offsets, s)])
            return cvops.to_normalized_rgb(tiles)
        tiles = cut_tiles(_uint8_chw(crop), params.offsets, s)
        return to_normalized_tensor(tiles, self.color_space)

    # -- decoding --------------------------------------------------------------------------------
    def _decode(self, img: Image.Image, crops) -> tuple[Image.Image, int]:
        """Load ``img``; at a reduced JPEG scale when every (box, output size) crop still shrinks."""
        scale = 1
        lazy = img.format == "JPEG" and bool(getattr(img, "tile", None))
        if self.fast_decode and lazy:
            width, height = img.size
            for s in (8, 4, 2):
                if all(box[2] / s >= size and box[3] / s >= size for box, size in crops):
                    img.draft("RGB", (width // s, height // s))
                    if img.size == (math.ceil(width / s), math.ceil(height / s)):
                        scale = s
                    break
        img.load()
        if img.mode != "RGB":
            img = img.convert("RGB")
        return img, scale

    def __call__(self, source) -> dict:
        img = open_image(source)
        try:
            params = [self.sample_view(img) for _ in range(self.views)]
            jig = self.sample_jigsaw(img) if self.jigsaw is not None else None
            crops = [(v.box, self.policy.image_size) for v in params]
            if jig is not None:
                crops.append((jig.box, self.jigsaw.crop_size))
            decoded, scale = self._decode(img, crops)
            out = {f"view{i + 1}": self.render_view(decoded, v, scale) for i, v in enumerate(params)}
            if jig is not None:
                out["jigsaw"] = self.render_jigsaw(decoded, jig, scale)
            return out
        finally:
            if img is not source:
                img.close()

    def __repr__(self):
        return (f"{type(self).__name__}(policy={self.policy}, color_space={self.color_space!r}, "
                f"jigsaw={self.jigsaw}, views={self.views}, ra_ops={self.ra_ops!r}, fast_decode={self.fast_decode}, "
                f"backend={self.backend!r})")


def _jitter(img: Image.Image, params) -> Image.Image:
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


def _uint8_hwc(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8))


def _uint8_chw(img: Image.Image) -> torch.Tensor:
    return _uint8_hwc(img).permute(2, 0, 1)


def _jigsaw_spec(jigsaw) -> JigsawSpec | None:
    if isinstance(jigsaw, JigsawSpec):
        return jigsaw
    if not isinstance(jigsaw, bool):
        raise TypeError(f"jigsaw must be a bool or a JigsawSpec, got {jigsaw!r}")
    return JigsawSpec() if jigsaw else None


def build_multiview_transform(policy="D", image_size: int = 224, crop_min: float | None = None,
                              jigsaw: bool | JigsawSpec = False, color_space: str = "RGB", *, views: int = 2,
                              ra_ops: str | None = None, fast_decode: bool = True, backend: str = "cv2",
                              **overrides) -> MultiViewTransform:
    """Two independent views (plus the jigsaw view) of one image under a named policy A-E.

    ``crop_min=None`` keeps the policy's bound (0.2, the MoCo-queue value; memory-bank methods use
    0.08, see :func:`infomin.views.default_crop_min`). ``overrides``: ``jitter_strength``,
    ``blur_prob``, ``ra_magnitude`` and any :class:`~infomin.views.Policy` field. ``ra_ops``:
    "rgb" or "cmc" (default: "cmc" for non-RGB colour spaces, as the reference does for CMC).
    ``backend``: "cv2" (OpenCV photometric ops, same parameter draws, fast) or "pil" (the stock
    torchvision/PIL ops: the reference's pixels given the same seeds).
    """
    pol = apply_overrides(policy, image_size=image_size, crop_min=crop_min, **overrides)
    return MultiViewTransform(pol, color_space, _jigsaw_spec(jigsaw), views, ra_ops, fast_decode, backend)


class _SingleView:
    """Adapts a one-view MultiViewTransform to callable(PIL) -> tensor."""

    def __init__(self, transform: MultiViewTransform):
        self.transform = transform

    def __call__(self, source) -> torch.Tensor:
        return self.transform(source)["view1"]

    def __repr__(self):
        return f"{type(self).__name__}({self.transform!r})"


def build_linear_train_transform(randaugment: bool = False, image_size: int = 224, crop_min: float = 0.2,
                                 color_space: str = "RGB", *, ra_magnitude: int | None = None,
                                 fast_decode: bool = True):
    """Linear-protocol training view: RRC(crop_min..1) -> flip [-> RandAugment] -> normalise."""
    stages = ("randaugment",) if randaugment else ()
    pol = Policy("linear", stages, (0.0, 0.0, 0.0, 0.0), 0.0, crop_min=crop_min, image_size=image_size,
                 randaugment="rand-n2-m10-mstd0.5" if randaugment else None)
    if ra_magnitude is not None:
        pol = apply_overrides(pol, ra_magnitude=ra_magnitude)
    return _SingleView(MultiViewTransform(pol, color_space, None, 1, None, fast_decode))


class EvalTransform:
    """Resize(shorter side) -> CenterCrop -> colour space -> normalise, on a fully decoded image."""

    def __init__(self, image_size: int = 224, resize: int = 256, color_space: str = "RGB"):
        if resize < image_size:
            raise ValueError(f"resize={resize} must be >= image_size={image_size} for a centre crop")
        self.image_size, self.resize, self.color_space = image_size, resize, canonical(color_space)

    def __call__(self, source) -> torch.Tensor:
        img = open_image(source)
        try:
            rgb = img.convert("RGB")
            rgb = TF.center_crop(TF.resize(rgb, self.resize, interpolation=T.InterpolationMode.BILINEAR),
                                 self.image_size)
            return to_normalized_tensor(_uint8_chw(rgb), self.color_space)
        finally:
            if img is not source:
                img.close()

    def __repr__(self):
        return f"{type(self).__name__}(image_size={self.image_size}, resize={self.resize}, color_space={self.color_space!r})"


def build_eval_transform(image_size: int = 224, resize: int = 256, color_space: str = "RGB") -> EvalTransform:
    return EvalTransform(image_size, resize, color_space)
