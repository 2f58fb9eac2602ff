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
from dataclasses import dataclass, field

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from .colorspace import canonical, to_normalized_tensor
from .jigsaw import JigsawSpec
from .policies import Policy, apply_overrides
from .stages import STAGES, JigsawParams, JigsawView, ViewContext
from .stages.normalize import uint8_chw

__all__ = ["ViewParams", "MultiViewTransform", "build_multiview_transform", "build_eval_transform",
           "build_linear_train_transform", "open_image"]


@dataclass
class ViewParams:
    """One view's sampled parameters: the crop box (top, left, height, width in original pixels),
    the flip, and each policy stage's parameters by stage name (None: the stage did not fire)."""

    box: tuple[int, int, int, int]
    flip: bool
    stages: dict = field(default_factory=dict)

    @property
    def jitter(self):
        """(fn_order, brightness, contrast, saturation, hue), as ColorJitter.get_params, or None."""
        return self.stages.get("jitter")

    @property
    def blur_sigma(self) -> float | None:
        return self.stages.get("blur")

    @property
    def grayscale(self) -> bool:
        return bool(self.stages.get("grayscale"))


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


class MultiViewTransform:
    """Callable(PIL image or path) -> {"view1", "view2"[, "jigsaw"]} float tensors, normalised.

    Each view is the registered stages in order: "crop", "flip", the policy's ``stages``, then
    "normalize" (colour space); see :mod:`infomin.views.stages`.
    """

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
        self.context = ViewContext.build(color_space, ra_ops)
        self.color_space = self.context.color_space
        self.ra_ops = self.context.ra_ops
        self.jigsaw = jigsaw
        self.views = views
        self.fast_decode = fast_decode
        build = lambda name: STAGES.get(name)(policy, self.context)
        self._crop, self._flip, self._normalize = build("crop"), build("flip"), build("normalize")
        self._stages = [(name, build(name)) for name in policy.stages]
        self._jigsaw = JigsawView(jigsaw, self.context) if jigsaw is not None else None

    # -- sampling (torch RNG, reference order) -------------------------------------------------
    def sample_view(self, img: Image.Image) -> ViewParams:
        params = ViewParams(box=self._crop.sample(img), flip=self._flip.sample(img))
        for name, stage in self._stages:
            params.stages[name] = stage.sample(img)
        return params

    def sample_jigsaw(self, img: Image.Image) -> JigsawParams:
        return self._jigsaw.sample(img)

    # -- rendering -------------------------------------------------------------------------------
    def render_view(self, img: Image.Image, params: ViewParams, scale: int = 1) -> torch.Tensor:
        view = self._flip.render_pil(self._crop.render_pil(img, params.box, scale), params.flip)
        if self.backend == "cv2":
            arr = np.asarray(view)
            for name, stage in self._stages:
                if params.stages[name] is not None:
                    arr = stage.render_cv2(arr, params.stages[name])
            return self._normalize.render_cv2(arr)
        for name, stage in self._stages:
            if params.stages[name] is not None:
                view = stage.render_pil(view, params.stages[name])
        return self._normalize.render_pil(view)

    def render_jigsaw(self, img: Image.Image, params: JigsawParams, scale: int = 1) -> torch.Tensor:
        if self.backend == "cv2":
            return self._jigsaw.render_cv2(img, params, scale)
        return self._jigsaw.render_pil(img, params, scale)

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
            return to_normalized_tensor(uint8_chw(rgb), self.color_space)
        finally:
            if img is not source:
                img.close()

    def __repr__(self):
        return f"{type(self).__name__}(image_size={self.image_size}, resize={self.resize}, color_space={self.color_space!r})"


def build_eval_transform(image_size: int = 224, resize: int = 256, color_space: str = "RGB") -> EvalTransform:
    return EvalTransform(image_size, resize, color_space)
