"""`convert_checkpoint`: any supported SSL ResNet checkpoint -> Detectron2 model-zoo pickle."""
from __future__ import annotations

import torch

from .formats import read_backbone
from .loading import load_checkpoint
from .mapping import detectron2_name
from .resnet import check_backbone, infer_arch
from .summary import ConversionSummary
from .writer import check_destination, write_zoo_pickle


def convert_checkpoint(src: str, dst: str, *, fmt: str | None = None, ema: bool = False,
                       trust: bool = False) -> ConversionSummary:
    """Convert the ResNet backbone in `src` and write it to `dst` (.pkl) for Detectron2.

    `fmt` is one of infomin, pycontrast, moco, sololearn, torchvision (None/"auto": detect);
    `ema` takes the momentum encoder; `trust` allows full unpickling of `src`. Raises
    `ConversionError` (nothing written) for files it refuses.
    """
    check_destination(dst, src)
    found = read_backbone(load_checkpoint(src, trust=trust), fmt, ema)
    arch = infer_arch(found.backbone)
    check_backbone(found.backbone, arch)
    renamed, arrays, cast = {}, {}, set()
    for key, tensor in found.backbone.items():
        name = detectron2_name(key)
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            cast.add(str(tensor.dtype).replace("torch.", ""))
            tensor = tensor.float()
        renamed[key] = name
        arrays[name] = tensor.detach().cpu().contiguous().numpy()  # keeps 0-d shapes
    notes = _notes(arch, found.declared_arch, cast)
    write_zoo_pickle(arrays, dst)
    return ConversionSummary(src, dst, found.fmt, ema, found.source, arch, renamed,
                             found.dropped, found.ignored, notes)


def _notes(arch, declared, cast) -> list:
    notes = []
    if declared and declared != arch.name:
        notes.append(f"the checkpoint says its architecture is {declared!r}, but its tensor shapes "
                     f"are those of {arch.name}; the shapes were used")
    if cast:
        notes.append(f"{'/'.join(sorted(cast))} weights were stored as float32 (Detectron2 trains in float32)")
    if arch.block == "basic":
        notes.append("R18/R34 have basic blocks: they work as FPN (or other res2-res5) backbones; "
                     "C4 models (Res5ROIHeads) build a bottleneck res5 and cannot use them")
        if arch.res2_channels != 64:
            notes.append("Detectron2's build_resnet_backbone builds R18/R34 only with "
                         "RES2_OUT_CHANNELS 64; weights of another width need a custom backbone")
    return notes
