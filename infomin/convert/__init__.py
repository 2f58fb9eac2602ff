"""Convert self-supervised ResNet checkpoints into Detectron2 model-zoo weights.

Reads this project's pretraining checkpoints, PyContrast, MoCo v1/v2/v3, solo-learn and plain
torchvision state dicts (ResNet-18..152, ResNeXt, width multipliers), infers the architecture
from tensor shapes, and writes `{"model": {name: ndarray}, "__author__", "matching_heuristics"}`.
Does not need Detectron2.
"""
from .convert import convert_checkpoint
from .errors import ConversionError
from .formats import FORMATS, detect_format, read_backbone
from .loading import load_checkpoint
from .mapping import detectron2_name
from .resnet import ResNetArch, check_backbone, infer_arch
from .summary import ConversionSummary

__all__ = [
    "FORMATS", "ConversionError", "ConversionSummary", "ResNetArch", "check_backbone",
    "convert_checkpoint", "detect_format", "detectron2_name", "infer_arch", "load_checkpoint",
    "read_backbone",
]
