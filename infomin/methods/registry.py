"""The predefined methods of PyContrast as settings of the shared components, and `build_method`.

`METHOD_DEFAULTS[name]` holds the reference value of every setting the method uses (PyContrast's
`override_dict` plus its shared defaults); `build_method` fills only the settings the caller did
not give, so an explicit setting always wins. A setting that the method would ignore is an error
unless it equals the method's default, so nothing given on purpose is silently dropped.
`METHOD_VIEWS[name]` holds the matching view settings for the data pipeline (infomin.views).
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from infomin.methods.bank import MemoryBankMethod
from infomin.methods.moco import MoCoMethod
from infomin.methods.supervised import SupervisedMethod
from infomin.models import ARCHS, HEADS

_BACKBONE = {"arch": "resnet50", "width": 1}
_SHARED = {**_BACKBONE, "feat_dim": 128, "queue_size": 65536, "beta": 0.5}
_BANK = {**_SHARED, "momentum": 0.5}  # no key encoder, so no shuffle_bn
_MOCO = {**_SHARED, "momentum": 0.999, "shuffle_bn": True, "bn_splits": 1}

METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "InsDis": {**_BANK, "head": "linear", "temperature": 0.07, "jigsaw": False},
    "CMC": {**_BANK, "head": "linear", "temperature": 0.07, "jigsaw": False},
    "MoCo": {**_MOCO, "head": "linear", "temperature": 0.07, "jigsaw": False},
    "PIRL": {**_BANK, "head": "linear", "temperature": 0.07, "jigsaw": True},
    "MoCov2": {**_MOCO, "head": "mlp", "temperature": 0.2, "jigsaw": False},
    "CMCv2": {**_MOCO, "head": "mlp", "temperature": 0.2, "jigsaw": False},
    "InfoMin": {**_MOCO, "head": "mlp", "temperature": 0.15, "jigsaw": True},
    "Supervised": dict(_BACKBONE),
}

# policy: infomin.views policy; crop_min: RandomResizedCrop lower bound (0.08 with a memory bank,
# 0.2 with a queue); two_views: False where the positive is the bank entry (view1 only).
METHOD_VIEWS: dict[str, dict[str, Any]] = {
    "InsDis": {"policy": "A", "crop_min": 0.08, "color_space": "RGB", "two_views": False},
    "CMC": {"policy": "C", "crop_min": 0.08, "color_space": "YDbDr", "two_views": False},
    "MoCo": {"policy": "A", "crop_min": 0.2, "color_space": "RGB", "two_views": True},
    "PIRL": {"policy": "A", "crop_min": 0.08, "color_space": "RGB", "two_views": False},
    "MoCov2": {"policy": "B", "crop_min": 0.2, "color_space": "RGB", "two_views": True},
    "CMCv2": {"policy": "E", "crop_min": 0.2, "color_space": "YDbDr", "two_views": True},
    "InfoMin": {"policy": "D", "crop_min": 0.2, "color_space": "RGB", "two_views": True},
    # the usual supervised ImageNet augmentation (RandomResizedCrop 0.08-1 + flip), not a policy
    "Supervised": {"policy": None, "crop_min": 0.08, "color_space": "RGB", "two_views": False},
}

_FAMILY = {
    "InsDis": (MemoryBankMethod, False), "PIRL": (MemoryBankMethod, False), "CMC": (MemoryBankMethod, True),
    "MoCo": (MoCoMethod, False), "MoCov2": (MoCoMethod, False), "InfoMin": (MoCoMethod, False),
    "CMCv2": (MoCoMethod, True),
}
_DATA_FACTS = ("num_classes", "dataset_size")  # facts about the data, accepted by every method
_KNOWN = ("arch", "width", "feat_dim", "head", "temperature", "queue_size", "momentum",
          "jigsaw", "beta", "shuffle_bn", "bn_splits") + _DATA_FACTS


def canonical_name(name: str) -> str:
    """The registered spelling of a method name (matching ignores case)."""
    lookup = {n.lower(): n for n in METHOD_DEFAULTS}
    if not isinstance(name, str) or name.lower() not in lookup:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHOD_DEFAULTS)}")
    return lookup[name.lower()]


def resolve_settings(name: str, **given: Any) -> dict[str, Any]:
    """The settings `build_method` would use: the caller's non-None values over the defaults."""
    name = canonical_name(name)
    unknown = sorted(set(given) - set(_KNOWN))
    if unknown:
        raise TypeError(f"build_method got unknown setting(s) {unknown}; known: {', '.join(_KNOWN)}")
    defaults = METHOD_DEFAULTS[name]
    given = {k: v for k, v in given.items() if v is not None}
    settings = {**defaults, **{k: v for k, v in given.items() if k in defaults}}
    for key, value in given.items():
        if key in defaults or key in _DATA_FACTS:
            continue
        raise ValueError(
            f"{name} does not use {key}={value!r} (its settings: {', '.join(defaults)}); "
            "remove it or leave it unset"
        )
    if not settings.get("jigsaw", False) and settings.get("beta", 0.5) != defaults.get("beta", 0.5):
        raise ValueError(f"beta={settings['beta']} weights the jigsaw loss; {name} runs with jigsaw=False")
    _validate(name, settings, given)
    for fact in _DATA_FACTS:
        if fact in given:
            settings[fact] = given[fact]
    return settings


def _validate(name: str, s: dict[str, Any], given: dict[str, Any]) -> None:
    if s["arch"] not in ARCHS:
        raise ValueError(f"unknown arch {s['arch']!r}; choose one of: {', '.join(ARCHS)}")
    if not (isinstance(s["width"], (int, float)) and s["width"] > 0):
        raise ValueError(f"width must be a positive number, got {s['width']!r}")
    if name == "Supervised":
        n = given.get("num_classes")
        if not (isinstance(n, int) and n >= 2):
            raise ValueError(f"Supervised needs num_classes (an int >= 2, the number of labels), got {n!r}")
        return
    if s["head"] not in HEADS:
        raise ValueError(f"unknown head {s['head']!r}; choose one of: {', '.join(HEADS)}")
    for key in ("feat_dim", "queue_size"):
        if not (isinstance(s[key], int) and s[key] >= 1):
            raise ValueError(f"{key} must be a positive int, got {s[key]!r}")
    if not (isinstance(s["temperature"], (int, float)) and s["temperature"] > 0):
        raise ValueError(f"temperature must be a positive number, got {s['temperature']!r}")
    bank = _FAMILY[name][0] is MemoryBankMethod
    m = s["momentum"]
    if not (isinstance(m, (int, float)) and 0 <= m and (m < 1 if bank else m <= 1)):
        raise ValueError(f"momentum must lie in [0, 1] (EMA) or [0, 1) (memory bank), got {m!r}")
    if "bn_splits" in s and not (isinstance(s["bn_splits"], int) and s["bn_splits"] >= 1):
        raise ValueError(f"bn_splits must be a positive int (1 = BatchNorm over the whole batch), got {s['bn_splits']!r}")
    if not (isinstance(s["beta"], (int, float)) and 0 <= s["beta"] <= 1):
        raise ValueError(f"beta must lie in [0, 1], got {s['beta']!r}")
    if bank:
        n = given.get("dataset_size")
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(
                f"{name} keeps a memory bank with one entry per training image: pass "
                f"dataset_size=len(train_set) (a positive int), got {n!r}"
            )


def build_method(name: str, *, arch: str | None = None, width: float | None = None,
                 feat_dim: int | None = None, head: str | None = None,
                 temperature: float | None = None, queue_size: int | None = None,
                 momentum: float | None = None, jigsaw: bool | None = None,
                 beta: float | None = None, num_classes: int | None = None,
                 dataset_size: int | None = None, **kw: Any) -> nn.Module:
    """Build a pretraining method by name; unset (None) settings take METHOD_DEFAULTS[name].

    `queue_size` is the number of negatives (queue length, or bank draws per image);
    `momentum` the EMA momentum (queue methods) or bank-entry momentum (bank methods).
    Extra keywords: `shuffle_bn` and `bn_splits` (queue methods). Bank methods need `dataset_size`,
    Supervised needs `num_classes`.
    """
    s = resolve_settings(
        name, arch=arch, width=width, feat_dim=feat_dim, head=head, temperature=temperature,
        queue_size=queue_size, momentum=momentum, jigsaw=jigsaw, beta=beta,
        num_classes=num_classes, dataset_size=dataset_size, **kw,
    )
    name = canonical_name(name)
    if name == "Supervised":
        method: nn.Module = SupervisedMethod(arch=s["arch"], width=s["width"], num_classes=s["num_classes"])
    else:
        cls, two_stream = _FAMILY[name]
        common = {k: s[k] for k in ("arch", "width", "feat_dim", "head", "temperature", "queue_size",
                                    "jigsaw", "beta", "momentum")}
        if cls is MoCoMethod:
            method = MoCoMethod(two_stream=two_stream, shuffle_bn=bool(s["shuffle_bn"]),
                                bn_splits=s["bn_splits"], **common)
        else:
            method = MemoryBankMethod(two_stream=two_stream, dataset_size=s["dataset_size"], **common)
    method.name = name
    method.settings = {k: v for k, v in s.items() if k not in _DATA_FACTS}
    return method
