"""Reference-style view pipelines: torchvision/PIL transforms composed the way PyContrast does it.

This is the baseline the fast path (:mod:`infomin.views.pipeline`) is measured and tested against:
every op is a stock torchvision transform, timm's RandAugment, the reference's conv blur, and
scikit-image's colour conversion, applied to a fully decoded image. It draws random numbers in the
same order as the fast path, so with the same seeds both give the same views (tests rely on that).
"""
from __future__ import annotations

import torchvision.transforms as T

from .jigsaw import JigsawSpec
from .policies import Policy, apply_overrides
from .stages import STAGES, ReferenceJigsaw, ViewContext, default_ra_ops
from .stages.normalize import ColorTransfer

__all__ = ["ColorTransfer", "build_reference_view", "ReferenceJigsaw", "ReferenceMultiView",
           "build_reference_transform", "default_ra_ops"]


def build_reference_view(policy: Policy, color_space: str = "RGB", ra_ops: str | None = None) -> T.Compose:
    """One view's transform: each registered stage's reference transforms, in the view's order
    (crop, flip, the policy's stages, colour space and normalisation)."""
    context = ViewContext.build(color_space, ra_ops)
    ops = []
    for name in ("crop", "flip", *policy.stages, "normalize"):
        ops += STAGES.get(name).reference(policy, context)
    return T.Compose(ops)


class ReferenceMultiView:
    """Decode fully, apply the same view transform independently per view, then the jigsaw view."""

    def __init__(self, policy: Policy, color_space: str = "RGB", jigsaw: JigsawSpec | None = None,
                 views: int = 2, ra_ops: str | None = None):
        self.view = build_reference_view(policy, color_space, ra_ops)
        self.jigsaw = ReferenceJigsaw(jigsaw, color_space) if jigsaw is not None else None
        self.views = views

    def __call__(self, img) -> dict:
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
