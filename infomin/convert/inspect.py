"""Read the architecture of Detectron2 ResNet weights back from their tensor shapes.

The same inference the converter uses (`infer_arch`), applied to Detectron2 names (a converted
`.pkl`, a fine-tuned detector's checkpoint), so tools can say which config weights need.
"""
from __future__ import annotations

from typing import Mapping

from .mapping import torchvision_name
from .resnet import ResNetArch, infer_arch

# the MODEL.RESNETS keys a ResNet's tensor shapes decide
SHAPE_SETTINGS = ("MODEL.RESNETS.DEPTH", "MODEL.RESNETS.STEM_OUT_CHANNELS",
                  "MODEL.RESNETS.RES2_OUT_CHANNELS", "MODEL.RESNETS.NUM_GROUPS",
                  "MODEL.RESNETS.WIDTH_PER_GROUP")


def torchvision_state(state: Mapping) -> dict:
    """The ResNet tensors of a Detectron2 state dict, under torchvision names."""
    out = {}
    for key, value in state.items():
        name = torchvision_name(str(key))
        if name is not None and hasattr(value, "shape"):
            out[name] = value
    return out


def detectron2_arch(state: Mapping) -> ResNetArch:
    """The ResNet a Detectron2 state dict holds; raises ConversionError when it holds none."""
    return infer_arch(torchvision_state(state))


def shape_settings(arch: ResNetArch) -> dict:
    """The MODEL.RESNETS settings that follow from the tensor shapes alone."""
    settings = arch.detectron2_settings()
    return {k: settings[k] for k in SHAPE_SETTINGS}
