"""torchvision ResNet / ResNeXt encoders with the reference's width multiplier.

The encoder is always a `torchvision.models.ResNet` with `fc = nn.Identity()`, so its state_dict
keys are exactly torchvision's (`conv1.weight`, `layer1.0.bn1.running_mean`, ...) and Detectron2's
converters and `torchvision` itself can read it. At `width == 1` the model is the one
torchvision builds. Other widths follow PyContrast's rule (every stage scaled, stem
`max(int(64*width), 64)`), which is what "R50x2/x4" and CMC's half-width streams mean; this
differs from torchvision's `wide_resnet*` (only the bottleneck's inner width grows).
"""
from __future__ import annotations

import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, conv1x1

# name -> (block, blocks per stage, groups, width_per_group). torchvision's names; the ResNeXt
# variants torchvision has no builder for (PyContrast's resnext101v1, resnext152v1/v2/v3,
# networks/resnet.py) are named the same way and built from the same torchvision blocks.
ARCHS: dict[str, tuple[type[nn.Module], list[int], int, int]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], 1, 64),
    "resnet34": (BasicBlock, [3, 4, 6, 3], 1, 64),
    "resnet50": (Bottleneck, [3, 4, 6, 3], 1, 64),
    "resnet101": (Bottleneck, [3, 4, 23, 3], 1, 64),
    "resnet152": (Bottleneck, [3, 8, 36, 3], 1, 64),
    "resnext50_32x4d": (Bottleneck, [3, 4, 6, 3], 32, 4),
    "resnext101_32x4d": (Bottleneck, [3, 4, 23, 3], 32, 4),  # PyContrast resnext101v1
    "resnext101_32x8d": (Bottleneck, [3, 4, 23, 3], 32, 8),  # resnext101v2
    "resnext101_64x4d": (Bottleneck, [3, 4, 23, 3], 64, 4),  # resnext101v3
    "resnext152_32x4d": (Bottleneck, [3, 8, 36, 3], 32, 4),  # resnext152v1
    "resnext152_32x8d": (Bottleneck, [3, 8, 36, 3], 32, 8),  # resnext152v2
    "resnext152_64x4d": (Bottleneck, [3, 8, 36, 3], 64, 4),  # resnext152v3 (no released model)
    "wide_resnet50_2": (Bottleneck, [3, 4, 6, 3], 1, 128),
    "wide_resnet101_2": (Bottleneck, [3, 4, 23, 3], 1, 128),
}


def feature_dim(arch: str, width: float = 1) -> int:
    """Size of the pooled feature the encoder returns (2048 for ResNet-50, 1024 at width 0.5)."""
    block = _lookup(arch)[0]
    return int(64 * width) * 8 * block.expansion


def build_encoder(arch: str = "resnet50", width: float = 1, in_channels: int = 3) -> ResNet:
    """A torchvision ResNet without its classifier (`fc = nn.Identity()`), randomly initialised.

    `width` scales every stage (PyContrast's `resnet50x2` is `arch="resnet50", width=2`);
    `in_channels` lets CMC feed a 1-channel L/Y or 2-channel ab/DbDr stream.
    """
    block, layers, groups, width_per_group = _lookup(arch)
    if not (width > 0 and int(64 * width) >= 1):
        raise ValueError(f"width must be a positive number with int(64*width) >= 1, got {width!r}")
    if not (isinstance(in_channels, int) and in_channels >= 1):
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if width == 1 and arch in torchvision.models.list_models(torchvision.models):
        model = torchvision.models.get_model(arch, weights=None)
    elif width == 1:  # what torchvision's builders do: ResNet(block, layers, groups=, width_per_group=)
        model = ResNet(block, layers, groups=groups, width_per_group=width_per_group)
    else:
        model = ResNet(block, layers, groups=groups, width_per_group=width_per_group)
        _rescale(model, block, layers, groups, width_per_group, width)
    if in_channels != 3:
        old = model.conv1
        model.conv1 = nn.Conv2d(in_channels, old.out_channels, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.fc = nn.Identity()
    return model


def _lookup(arch: str):
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    return ARCHS[arch]


def _rescale(model: ResNet, block, layers, groups, width_per_group, width) -> None:
    """Rebuild stem and stages of `model` at `width`, keeping torchvision's module names."""
    stem = max(int(64 * width), 64)
    base = int(64 * width)
    model.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    inplanes = stem
    for i, (n_blocks, stride) in enumerate(zip(layers, (1, 2, 2, 2))):
        planes = base * 2**i
        stage, inplanes = _stage(block, inplanes, planes, n_blocks, stride, groups, width_per_group)
        setattr(model, f"layer{i + 1}", stage)
    for m in model.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _stage(block, inplanes, planes, n_blocks, stride, groups, width_per_group):
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(conv1x1(inplanes, out, stride), nn.BatchNorm2d(out))
    blocks = [block(inplanes, planes, stride, downsample, groups, width_per_group)]
    blocks += [block(out, planes, groups=groups, base_width=width_per_group) for _ in range(1, n_blocks)]
    return nn.Sequential(*blocks), out
