"""Config -> method library objects (infomin.methods / infomin.views), in one place.

Only keys the user (or a preset YAML) set are passed on; a None key leaves the choice to the
method's or the view policy's own reference default, so nothing is overridden behind anyone's back.
"""
from __future__ import annotations

import torch.nn as nn


def method_defaults(name: str) -> dict:
    """The reference value of every setting of MODEL.METHOD (its registry entry)."""
    from infomin.methods import METHOD_DEFAULTS

    if name not in METHOD_DEFAULTS:
        raise ValueError(
            f"MODEL.METHOD {name!r} is unknown; choose one of {', '.join(sorted(METHOD_DEFAULTS))}."
        )
    return METHOD_DEFAULTS[name]


def linear_aug(cfg) -> str:
    """LINEAR.AUG if set, else the augmentation the method's published linear number used
    (its registry entry, METHOD_LINEAR): "RA" or "NULL"."""
    from infomin.methods import METHOD_LINEAR

    if cfg.LINEAR.AUG is not None:
        return cfg.LINEAR.AUG
    method_defaults(cfg.MODEL.METHOD)  # clear error for an unknown name
    return METHOD_LINEAR[cfg.MODEL.METHOD]["aug"]


def method_views(name: str) -> dict:
    from infomin.methods import METHOD_VIEWS

    return METHOD_VIEWS.get(name, {})


def view_setting(cfg, key: str):
    """VIEWS.<KEY> if set, else the method's reference view setting (METHOD_VIEWS)."""
    value = cfg.VIEWS[key.upper()]
    return value if value is not None else method_views(cfg.MODEL.METHOD).get(key)


def method_kwargs(cfg) -> dict:
    """MODEL.<SETTING> -> build_method keyword, for every method setting the config states."""
    from infomin.methods import declared_settings

    values = {name: cfg.MODEL.get(name.upper()) for name in declared_settings()}
    return {name: value for name, value in values.items() if value is not None}


def check_method_settings(cfg) -> None:
    """MODEL.METHOD and every MODEL.<SETTING> checked by the method's own rules (an unknown
    MODEL.ARCH lists the choices), so a bad value stops at load time in one line."""
    from infomin.methods import check_settings

    method_defaults(cfg.MODEL.METHOD)
    check_settings(cfg.MODEL.METHOD, **method_kwargs(cfg))


def uses_jigsaw(cfg) -> bool:
    """Whether the views must include jigsaw tiles: VIEWS.JIGSAW, else the method's setting."""
    if cfg.VIEWS.JIGSAW is not None:
        return bool(cfg.VIEWS.JIGSAW)
    return method_uses_jigsaw(cfg)


def method_uses_jigsaw(cfg) -> bool:
    if cfg.MODEL.JIGSAW is not None:
        return bool(cfg.MODEL.JIGSAW)
    return bool(method_defaults(cfg.MODEL.METHOD).get("jigsaw", False))


def check_views_match_method(cfg) -> None:
    """A jigsaw branch without jigsaw tiles cannot train: say so before any data is read."""
    if cfg.VIEWS.JIGSAW is not None and not cfg.VIEWS.JIGSAW and method_uses_jigsaw(cfg):
        raise ValueError(
            f"VIEWS.JIGSAW is False but {cfg.MODEL.METHOD} trains a jigsaw branch (MODEL.JIGSAW); "
            "set MODEL.JIGSAW False as well, or leave VIEWS.JIGSAW unset."
        )


def resolve_for_batch(cfg, batch_per_process: int):
    """`cfg` with the method settings that depend on the batch per process made concrete:
    MODEL.BN_SPLITS "auto" (the queue methods' default when unset) becomes its number of BatchNorm
    groups (infomin.models.resolve_bn_splits: groups of 32 images). The engine calls this once, so
    config.yaml and the checkpoint's config record the number the run used and anything that
    rebuilds the method from them (linear evaluation, resume) needs no batch."""
    from infomin.models import resolve_bn_splits

    value = cfg.MODEL.BN_SPLITS
    if value is None:
        value = method_defaults(cfg.MODEL.METHOD).get("bn_splits")
    if value != "auto":
        return cfg
    out = cfg.clone()
    out.defrost()
    out.MODEL.BN_SPLITS = resolve_bn_splits(value, batch_per_process)
    if cfg.is_frozen():
        out.freeze()
    return out


def build_method(cfg, dataset_size: int, num_classes: int) -> nn.Module:
    from infomin.methods import build_method as _build

    method_defaults(cfg.MODEL.METHOD)  # clear error for an unknown name
    return _build(cfg.MODEL.METHOD, num_classes=num_classes, dataset_size=dataset_size,
                  **method_kwargs(cfg))


def build_train_transform(cfg):
    """The pretraining views: two views (+ jigsaw) of VIEWS.*, one view for methods whose positive
    is a memory-bank entry, or a plain crop when the method has no view policy (Supervised).
    With DATA.LOADER gpu: the worker half of the device views (draws the same parameters, ships
    the JPEG bytes; see build_device_views)."""
    policy = view_setting(cfg, "policy")
    crop_min = view_setting(cfg, "crop_min")
    gpu = cfg.DATA.LOADER == "gpu"
    if policy is None:
        crop = build_crop_transform(cfg, crop_min if crop_min is not None else 0.08)
        return _encoded(crop.transform) if gpu else _AsViews(crop)
    from infomin.views import build_multiview_transform

    overrides = view_knobs(cfg)
    overrides.update(_color_kwargs(cfg))
    two_views = method_views(cfg.MODEL.METHOD).get("two_views", True)
    views = build_multiview_transform(
        policy=policy,
        image_size=cfg.VIEWS.IMAGE_SIZE,
        jigsaw=_jigsaw_spec(cfg) if uses_jigsaw(cfg) else False,
        views=2 if two_views else 1,
        **overrides,
    )
    return _encoded(views) if gpu else views


def _encoded(transform):
    from infomin.views.device import EncodedViews

    return EncodedViews(transform)


def build_device_views(cfg, dataset, device):
    """DATA.LOADER gpu: the device half of the views (batched decode + stages on ``device``),
    replacing undecodable images from ``dataset`` as the CPU loader does; None for DATA.LOADER cpu."""
    if cfg.DATA.LOADER != "gpu":
        return None
    from infomin.views.device import DeviceViews

    return DeviceViews(dataset.view_transform.transform, device, substitute=dataset.load,
                       describe=dataset.path_of)


def view_knobs(cfg) -> dict:
    """VIEWS.<KNOB> for each knob of the registered view stages (infomin.views.STAGES: CROP_MIN,
    JITTER_STRENGTH, BLUR_PROB, RA_MAGNITUDE), where set; CROP_MIN falls back to the method's
    reference bound. A knob with no VIEWS key (a stage registered outside the library) is left to
    its policy."""
    from infomin.views import STAGES

    values = {name: view_setting(cfg, name) for name in STAGES.knobs() if name.upper() in cfg.VIEWS}
    return {name: value for name, value in values.items() if value is not None}


def _jigsaw_spec(cfg):
    from infomin.views import JigsawSpec

    return JigsawSpec(crop_size=cfg.VIEWS.JIGSAW_CROP, tile=cfg.VIEWS.JIGSAW_TILE)


class _AsViews:
    """Wrap a one-tensor transform as the {"view1": ...} dict methods take."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, img):
        return {"view1": self.transform(img)}


def eval_resize(cfg) -> int:
    return cfg.VIEWS.EVAL_RESIZE or round(cfg.VIEWS.IMAGE_SIZE * 256 / 224)


def _color_kwargs(cfg) -> dict:
    space = view_setting(cfg, "color_space")
    return {"color_space": space} if space is not None else {}


def build_eval_transform(cfg):
    """Resize + centre crop + colour space + normalise (kNN monitor, linear-eval validation)."""
    from infomin.views import build_eval_transform as _build

    return _build(image_size=cfg.VIEWS.IMAGE_SIZE, resize=eval_resize(cfg), **_color_kwargs(cfg))


def build_crop_transform(cfg, crop_min: float, randaugment: bool = False):
    """RandomResizedCrop(crop_min..1) + flip [+ RandAugment rand-n2-m10-mstd0.5] + normalise:
    the reference's linear-training augmentation, also used for supervised pretraining."""
    from infomin.views import build_linear_train_transform

    return build_linear_train_transform(randaugment=randaugment, image_size=cfg.VIEWS.IMAGE_SIZE,
                                        crop_min=crop_min, **_color_kwargs(cfg))
