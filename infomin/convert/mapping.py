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
