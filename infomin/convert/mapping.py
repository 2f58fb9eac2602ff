"""torchvision ResNet key names -> Detectron2 ResNet key names.

Detectron2's ResNet keeps each BatchNorm inside its conv (`conv1.norm`), calls the stages
res2..res5 and the projection shortcut `shortcut`; see Detectron2's `detectron2/modeling/backbone/resnet.py`.
"""
from __future__ import annotations

import re

_RULES = [
    (re.compile(r"^conv1\.weight$"), lambda m: "stem.conv1.weight"),
    (re.compile(r"^bn1\.(\w+)$"), lambda m: f"stem.conv1.norm.{m[1]}"),
    (re.compile(r"^layer([1-4])\.(\d+)\.conv([1-3])\.weight$"),
     lambda m: f"res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.weight"),
    (re.compile(r"^layer([1-4])\.(\d+)\.bn([1-3])\.(\w+)$"),
     lambda m: f"res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.norm.{m[4]}"),
    (re.compile(r"^layer([1-4])\.(\d+)\.downsample\.0\.weight$"),
     lambda m: f"res{int(m[1]) + 1}.{m[2]}.shortcut.weight"),
    (re.compile(r"^layer([1-4])\.(\d+)\.downsample\.1\.(\w+)$"),
     lambda m: f"res{int(m[1]) + 1}.{m[2]}.shortcut.norm.{m[3]}"),
]


def detectron2_name(key: str) -> str:
    """Detectron2 name of one torchvision ResNet key, e.g. layer1.0.bn2.bias -> res2.0.conv2.norm.bias."""
    for pattern, build in _RULES:
        m = pattern.match(key)
        if m:
            return build(m)
    raise KeyError(f"{key} is not a torchvision ResNet backbone key")


_INVERSE = [
    (re.compile(r"^stem\.conv1\.weight$"), lambda m: "conv1.weight"),
    (re.compile(r"^stem\.conv1\.norm\.(\w+)$"), lambda m: f"bn1.{m[1]}"),
    (re.compile(r"^res([2-5])\.(\d+)\.conv([1-3])\.weight$"),
     lambda m: f"layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}.weight"),
    (re.compile(r"^res([2-5])\.(\d+)\.conv([1-3])\.norm\.(\w+)$"),
     lambda m: f"layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}.{m[4]}"),
    (re.compile(r"^res([2-5])\.(\d+)\.shortcut\.weight$"),
     lambda m: f"layer{int(m[1]) - 1}.{m[2]}.downsample.0.weight"),
    (re.compile(r"^res([2-5])\.(\d+)\.shortcut\.norm\.(\w+)$"),
     lambda m: f"layer{int(m[1]) - 1}.{m[2]}.downsample.1.{m[3]}"),
]
# the stem/res2..res5 part of a Detectron2 key, under any prefix (backbone., backbone.bottom_up.,
# roi_heads. for the C4 res5)
_D2_BACKBONE_KEY = re.compile(r"(?:^|\.)((?:stem|res[2-5])\..+)$")


def backbone_part(key: str) -> str | None:
    """`res2.0.conv1.weight` for `backbone.bottom_up.res2.0.conv1.weight` (None outside stem/res*)."""
    m = _D2_BACKBONE_KEY.search(key)
    return m[1] if m else None


def torchvision_name(key: str) -> str | None:
    """torchvision name of a Detectron2 ResNet key (any prefix), or None for other keys."""
    part = backbone_part(key)
    if part is None:
        return None
    for pattern, build in _INVERSE:
        m = pattern.match(part)
        if m:
            return build(m)
    return None
