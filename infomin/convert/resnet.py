"""ResNet architecture inference from tensor shapes, and the backbone completeness check.

Works on torchvision key names (`conv1.weight`, `layer3.5.bn2.running_var`, ...). Shapes
alone decide depth, block type, ResNeXt groups/width and width multipliers, so the
converter never trusts a checkpoint's own `arch` string for the weights it writes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from .errors import ConversionError

# (block, blocks per stage) -> depth, exactly the table Detectron2's build_resnet_backbone knows
DEPTHS = {
    ("basic", (2, 2, 2, 2)): 18,
    ("basic", (3, 4, 6, 3)): 34,
    ("bottleneck", (3, 4, 6, 3)): 50,
    ("bottleneck", (3, 4, 23, 3)): 101,
    ("bottleneck", (3, 8, 36, 3)): 152,
}
BN_PARAMS = ("weight", "bias", "running_mean", "running_var")
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")
_BOTTLENECK_KEY = re.compile(r"^layer[1-4]\.\d+\.(conv3|bn3)\.")
# torchvision/detectron2 input normalisation of every supported SSL recipe (0-255 units, RGB)
TORCHVISION_PIXEL_MEAN = [123.675, 116.28, 103.53]
TORCHVISION_PIXEL_STD = [58.395, 57.12, 57.375]


@dataclass(frozen=True)
class ResNetArch:
    """A torchvision-style ResNet/ResNeXt, described the way Detectron2's config describes it."""

    block: str  # "basic" (R18/34) or "bottleneck"
    blocks_per_stage: tuple
    stem_channels: int  # = MODEL.RESNETS.STEM_OUT_CHANNELS
    res2_channels: int  # output channels of res2 = MODEL.RESNETS.RES2_OUT_CHANNELS
    groups: int = 1
    width_per_group: int = 64  # bottleneck width at res2 / groups
    in_channels: int = 3

    @property
    def depth(self) -> int:
        return DEPTHS[(self.block, tuple(self.blocks_per_stage))]

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def width_multiplier(self):
        """Stage widths relative to torchvision's (PyContrast's `resnet50x2` is 2, CMC's streams 0.5)."""
        w = self.res2_channels / (64 * self.expansion)
        return int(w) if w == int(w) else w

    @property
    def name(self) -> str:
        """torchvision's name where one exists (resnet50, resnext101_32x8d, wide_resnet50_2),
        else PyContrast's `resnet50x2` naming for width-scaled networks."""
        d, w = self.depth, self.width_multiplier
        if self.stem_channels == 64 and w == 1:
            if self.block == "basic" or (self.groups == 1 and self.width_per_group == 64):
                return f"resnet{d}"
            if self.groups > 1:
                return f"resnext{d}_{self.groups}x{self.width_per_group}d"
            if self.width_per_group % 64 == 0:
                return f"wide_resnet{d}_{self.width_per_group // 64}"
        scaled = self.groups == 1 and self.stem_channels == max(int(64 * w), 64)
        if scaled and (self.block == "basic" or self.width_per_group == int(64 * w)):
            return f"resnet{d}x{w}"
        groups = f", {self.groups}x{self.width_per_group} groups" if self.block == "bottleneck" else ""
        return (f"resnet{d} (custom widths: stem {self.stem_channels}, res2 "
                f"{self.res2_channels}{groups})")

    def detectron2_settings(self) -> dict:
        """Config values a Detectron2 model needs to hold these weights (torchvision-style ResNet)."""
        return {
            "MODEL.RESNETS.DEPTH": self.depth,
            "MODEL.RESNETS.STRIDE_IN_1X1": False,
            "MODEL.RESNETS.NUM_GROUPS": self.groups,
            "MODEL.RESNETS.WIDTH_PER_GROUP": self.width_per_group,
            "MODEL.RESNETS.STEM_OUT_CHANNELS": self.stem_channels,
            "MODEL.RESNETS.RES2_OUT_CHANNELS": self.res2_channels,
            "MODEL.PIXEL_MEAN": list(TORCHVISION_PIXEL_MEAN),
            "MODEL.PIXEL_STD": list(TORCHVISION_PIXEL_STD),
            "INPUT.FORMAT": "RGB",
        }

    def expected_shapes(self) -> dict:
        """torchvision key -> shape for every weight and BN statistic (not num_batches_tracked)."""
        shapes = {"conv1.weight": (self.stem_channels, self.in_channels, 7, 7)}
        shapes.update(_bn("bn1", self.stem_channels))
        in_ch = self.stem_channels
        for s, n in enumerate(self.blocks_per_stage):
            out = self.res2_channels * 2 ** s
            mid = self.groups * self.width_per_group * 2 ** s
            for i in range(n):
                p = f"layer{s + 1}.{i}"
                if self.block == "bottleneck":
                    convs = [(mid, in_ch, 1), (mid, mid // self.groups, 3), (out, mid, 1)]
                else:
                    convs = [(out, in_ch, 3), (out, out, 3)]
                for j, (o, c, k) in enumerate(convs, start=1):
                    shapes[f"{p}.conv{j}.weight"] = (o, c, k, k)
                    shapes.update(_bn(f"{p}.bn{j}", o))
                if i == 0 and (s > 0 or in_ch != out):
                    shapes[f"{p}.downsample.0.weight"] = (out, in_ch, 1, 1)
                    shapes.update(_bn(f"{p}.downsample.1", out))
                in_ch = out
        return shapes


def _bn(prefix: str, channels: int) -> dict:
    return {f"{prefix}.{p}": (channels,) for p in BN_PARAMS}


def looks_like_resnet(state: Mapping) -> bool:
    """True when `state` (torchvision names) has a stem conv or any residual-stage tensor."""
    return "conv1.weight" in state or any(_BLOCK_KEY.match(k) for k in state)


def infer_arch(state: Mapping) -> ResNetArch:
    """Infer the architecture from tensor shapes; refuse what Detectron2's ResNet cannot hold."""
    block = "bottleneck" if any(_BOTTLENECK_KEY.match(k) for k in state) else "basic"
    needed = ["conv1.weight", "layer1.0.conv1.weight", "layer1.0.conv2.weight"]
    needed += ["layer1.0.conv3.weight"] if block == "bottleneck" else []
    _require(state, needed)
    stem = state["conv1.weight"].shape
    if len(stem) != 4 or tuple(stem[2:]) != (7, 7):
        raise ConversionError(
            f"the stem convolution conv1.weight has shape {tuple(stem)}, not 7x7: this is a "
            "CIFAR-style or otherwise modified ResNet, and Detectron2's BasicStem is a 7x7 conv "
            "followed by max-pooling, so these weights cannot be loaded into it")
    if stem[1] != 3:
        raise ConversionError(
            f"the stem takes {stem[1]} input channels (conv1.weight {tuple(stem)}); Detectron2 "
            "detectors take 3-channel images, so this encoder (e.g. one stream of a CMC model) "
            "cannot be used as a detection backbone")
    counts = [0, 0, 0, 0]
    for key in state:
        m = _BLOCK_KEY.match(key)
        if m:
            s = int(m.group(1)) - 1
            counts[s] = max(counts[s], int(m.group(2)) + 1)
    if (block, tuple(counts)) not in DEPTHS:
        known = ", ".join(f"{d} ({b}: {list(c)})" for (b, c), d in DEPTHS.items())
        raise ConversionError(
            f"the backbone's stages have {counts} {block} blocks, which is no ResNet depth "
            f"Detectron2 builds ({known}); the checkpoint is missing blocks or is not a standard "
            "torchvision ResNet/ResNeXt")
    if block == "basic":
        return ResNetArch("basic", tuple(counts), stem[0], state["layer1.0.conv2.weight"].shape[0])
    mid = state["layer1.0.conv1.weight"].shape[0]
    per_group_in = state["layer1.0.conv2.weight"].shape[1]
    if per_group_in == 0 or mid % per_group_in:
        raise ConversionError(
            f"layer1.0.conv2.weight has shape {tuple(state['layer1.0.conv2.weight'].shape)}, "
            f"which does not split the block's {mid} channels into groups: not a ResNet/ResNeXt block")
    groups = mid // per_group_in
    return ResNetArch("bottleneck", tuple(counts), stem[0], state["layer1.0.conv3.weight"].shape[0],
                      groups=groups, width_per_group=mid // groups)


def check_backbone(state: Mapping, arch: ResNetArch) -> None:
    """Refuse a backbone with missing, misshapen or foreign tensors, naming them.

    `num_batches_tracked` is optional (checkpoints from before PyTorch 0.4.1 lack it).
    Foreign tensors (SE blocks, ResNeSt splits, ...) mean the network is not a plain ResNet
    and Detectron2 would silently run it without them, so they are refused too.
    """
    expected = arch.expected_shapes()
    missing = [k for k in expected if k not in state]
    if missing:
        raise ConversionError(
            f"the {arch.name} backbone is missing {len(missing)} of its {len(expected)} tensors "
            f"({_preview(missing)}); the checkpoint is incomplete or was saved from a modified "
            "network. Re-save it from the full model, or convert the original file.")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {v})" for k, v in expected.items()
             if tuple(state[k].shape) != v]
    if wrong:
        raise ConversionError(
            f"tensors of the {arch.name} backbone have shapes that do not fit one ResNet: "
            f"{_preview(wrong)}; the checkpoint mixes architectures or is corrupted")
    foreign = [k for k in state if k not in expected and not _is_bn_counter(k, expected)]
    if foreign:
        raise ConversionError(
            f"the backbone has {len(foreign)} tensors a torchvision ResNet does not have "
            f"({_preview(foreign)}): it is a ResNet variant (SE, ResNeSt, ...) that Detectron2's "
            "ResNet cannot hold; converting it would drop part of the network")


def _is_bn_counter(key: str, expected: Mapping) -> bool:
    head, _, leaf = key.rpartition(".")
    return leaf == "num_batches_tracked" and f"{head}.weight" in expected


def _require(state: Mapping, keys) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise ConversionError(
            f"the ResNet backbone is missing {_preview(missing)}, so its architecture cannot "
            "be determined; the checkpoint is incomplete or not a torchvision-style ResNet")


def _preview(items, limit: int = 6) -> str:
    items = list(items)
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
