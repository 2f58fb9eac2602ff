"""View construction for contrastive pretraining: the reference's policies A-E, RandAugment, blur,
the jigsaw view, colour spaces, and a fast multi-view pipeline. See docs/views.md."""
from . import colorspace
from .blur import GaussianBlur, PILGaussianBlur, blur_uint8
from .jigsaw import JigsawSpec
from .pipeline import (MultiViewTransform, ViewParams, build_eval_transform, build_linear_train_transform,
                       build_multiview_transform, open_image)
from .policies import KNOBS, POLICIES, Policy, apply_overrides, default_crop_min, get_policy
from .randaugment import CMC_OPS, RGB_OPS, build_randaugment
from .reference import build_reference_transform
from .stages import STAGES, Knob, Stage, ViewContext

__all__ = [
    "colorspace", "GaussianBlur", "PILGaussianBlur", "blur_uint8", "JigsawSpec", "MultiViewTransform", "ViewParams",
    "build_eval_transform", "build_linear_train_transform", "build_multiview_transform", "open_image", "KNOBS",
    "POLICIES", "Policy", "apply_overrides", "default_crop_min", "get_policy", "CMC_OPS", "RGB_OPS",
    "build_randaugment", "build_reference_transform", "STAGES", "Knob", "Stage", "ViewContext",
]
