"""The one definition of infomin's pretraining checkpoint format (docs/pretrain-checkpoint.md).

Writers (the pretraining engine), readers (resume, linear evaluation, the converter) and the
guard in Detectron2 training that asks for a conversion first all go through this module, so
a change of format is made here once. It lives in the core library because the converter must
not depend on the pretraining package.
"""
from __future__ import annotations

from typing import Mapping

import torch

FORMAT = "infomin.pretrain"
FORMAT_VERSION = 1
# where an encoder's weights are in `model`: the query encoder and the momentum (EMA) copy
ENCODER_PREFIXES = {"online": "encoder.", "ema": "encoder_ema."}
# the two streams of a CMC encoder, under the encoder prefix (infomin.models.TwoStreamEncoder)
TWO_STREAM_PREFIXES = ("l.", "ab.")
# everything else the methods keep in `model`, and what it is
OTHER_PREFIXES = {
    "head_ema.": "momentum projection head",
    "head.": "projection head",
    "jigsaw_head.": "jigsaw head",
    "memory.": "memory bank / queue",
    "classifier.": "supervised classifier",
}
# entries of the payload that hold network weights (the rest is training state and metadata)
WEIGHT_ENTRIES = ("model", "model_ema")


def normalise_width(value) -> int | float:
    """The `width` field: an int for whole multipliers (1, 2), else a float (0.5, 0.25)."""
    value = 1 if value is None else value
    return int(value) if float(value).is_integer() else float(value)


def make_payload(*, arch: str, width, method: str, model: dict, optimizer: dict, scheduler: dict,
                 scaler: dict, epoch: int, iteration: int, rngs: list, config: str) -> dict:
    """The dict a pretraining checkpoint file holds; `rngs`: every rank's RNG states, rank order."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "width": normalise_width(width),
        "method": method,
        "model": {k: v.detach().cpu() for k, v in model.items()},
        "model_ema": None,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": scaler,
        "epoch": int(epoch),
        "iteration": int(iteration),
        "rng": {**rngs[0], "ranks": rngs},
        "config": config,
    }


def is_pretraining_checkpoint(obj) -> bool:
    """True for a loaded file in this format (any version)."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def check(obj, source: str) -> dict:
    """`obj` itself if it is a checkpoint this version can read; else a ValueError saying why."""
    if not is_pretraining_checkpoint(obj):
        raise ValueError(
            f"{source!r} is not an infomin pretraining checkpoint (no format={FORMAT!r} entry). "
            "Use infomin-convert-pretrained for other checkpoint layouts."
        )
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{source!r} has format_version {obj['format_version']}; this infomin reads up to "
            f"{FORMAT_VERSION}. Upgrade infomin."
        )
    return obj


def load(path: str) -> dict:
    """Read and check a checkpoint file (weights_only: no code runs from the file)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"Cannot read checkpoint {path!r}: {type(e).__name__}: {e}") from e
    return check(ckpt, path)


def encoder_state(ckpt: Mapping, which: str = "online") -> dict:
    """The `which` ("online" | "ema") encoder's weights from `model`, prefix removed ({} if none)."""
    prefix = ENCODER_PREFIXES[which]
    return {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}


def is_two_stream(encoder_weights: Mapping) -> bool:
    """True for a CMC encoder (two half-width ResNets), given encoder_state()'s keys."""
    return any(k.startswith(TWO_STREAM_PREFIXES) for k in encoder_weights)


def declared_arch(ckpt: Mapping) -> str | None:
    """The encoder as the converter names it: `resnet50`, or `resnet50x2` for other widths."""
    arch, width = ckpt.get("arch"), ckpt.get("width", 1)
    if not isinstance(arch, str):
        return None
    return arch if width in (1, None) else f"{arch}x{width}"
