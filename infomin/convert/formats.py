"""Checkpoint formats: recognise one and pull the ResNet backbone out of it.

Each reader returns the backbone under torchvision key names plus an account of every
other tensor it left behind and why, so the summary can list what was dropped.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch

from infomin import checkpoint_format as own

from .errors import ConversionError
from .resnet import looks_like_resnet

FORMATS = ("infomin", "pycontrast", "moco", "sololearn", "torchvision")
DDP = "module."
FC_HEAD = "fc: the layer after global pooling (classifier or projection); a detector has none"
MOMENTUM = "momentum (EMA) encoder; pass --ema to convert it instead of the online one"
ONLINE = "online encoder; --ema converts the momentum encoder instead"
CMC_REFUSAL = (
    "this is a CMC two-stream checkpoint ({keys}): two half-width ResNets, one for the L/Y "
    "channel and one for the colour channels. Detectron2 has no backbone that takes both, "
    "so there is nothing to convert; use a single-encoder (RGB) checkpoint such as InfoMin or "
    "MoCo v2.")


@dataclass
class Dropped:
    """A group of tensors the converter did not keep."""

    reason: str
    pattern: str
    count: int


@dataclass
class Extracted:
    """The backbone found in a checkpoint and an account of everything else."""

    fmt: str
    source: str  # where the backbone came from, e.g. "model[module.encoder.*]"
    backbone: dict  # torchvision key -> tensor
    dropped: list = field(default_factory=list)
    ignored: list = field(default_factory=list)  # top-level entries that hold no weights
    declared_arch: str | None = None


def read_backbone(ckpt, fmt: str | None = None, ema: bool = False) -> Extracted:
    """Find the ResNet backbone in a loaded checkpoint (`fmt` None/"auto": detect the format)."""
    if not isinstance(ckpt, Mapping):
        raise ConversionError(
            f"the file holds a {type(ckpt).__name__}, not a checkpoint dictionary; there is no "
            "ResNet backbone in it")
    if fmt in (None, "auto"):
        fmt = detect_format(ckpt)
    if fmt not in READERS:
        raise ConversionError(f"unknown format {fmt!r}; choose one of auto, {', '.join(FORMATS)}")
    found = READERS[fmt](ckpt, ema)
    if not looks_like_resnet(found.backbone):
        raise ConversionError(
            f"no ResNet backbone in this {fmt} checkpoint: {found.source} holds no ResNet "
            "tensors (conv1.weight, layer1-4.*). The converter takes torchvision-style ResNets "
            "and ResNeXts only.")
    return found


def detect_format(ckpt: Mapping) -> str:
    """Name the format from the checkpoint's structure; refuse when no ResNet is found."""
    if own.is_pretraining_checkpoint(ckpt):
        return "infomin"
    state = ckpt.get("state_dict")
    if _is_state(state):
        keys = _stripped(state)
        if any(k.startswith(("encoder_q.", "base_encoder.")) for k in keys):
            return "moco"
        if any(k.startswith("backbone.") for k in keys):
            return "sololearn"
    model = ckpt.get("model")
    if _is_state(model) and any(k.startswith(("encoder.", "encoder1.", "encoder2.")) for k in _stripped(model)):
        return "pycontrast"
    if _plain_state(ckpt) is not None:
        return "torchvision"
    raise ConversionError(
        "no ResNet backbone found in this file. Looked for: an infomin pretraining checkpoint "
        f"(format: {own.FORMAT}), PyContrast (model with [module.]encoder.*), MoCo "
        "(state_dict with module.encoder_q.*), solo-learn/Lightning (state_dict with "
        "backbone.*) and a torchvision ResNet state dict (conv1.weight, layer1-4.*). Its "
        f"top-level entries are: {_preview(ckpt)}. If it holds a ResNet under other names, "
        "re-save it as a torchvision state dict.")


def _read_infomin(ckpt: Mapping, ema: bool) -> Extracted:
    if own.is_pretraining_checkpoint(ckpt):
        try:
            own.check(ckpt, "this file")  # a newer format version than this infomin reads
        except ValueError as e:
            raise ConversionError(str(e)) from None
    model = _entry(ckpt, "model", "infomin")
    online, momentum = own.ENCODER_PREFIXES["online"], own.ENCODER_PREFIXES["ema"]
    _refuse_cmc(model, tuple(online + p for p in own.TWO_STREAM_PREFIXES))
    rules = list(own.OTHER_PREFIXES.items())
    model_ema = ckpt.get("model_ema")
    if not ema:
        found = _split("infomin", "model", model, online, [(momentum, MOMENTUM)] + rules)
        if _is_state(model_ema):
            found.dropped.append(Dropped(MOMENTUM, "model_ema (entry)", len(model_ema)))
    elif _is_state(model_ema) and any(k.startswith(online) for k in _stripped(model_ema)):
        found = _split("infomin", "model_ema", model_ema, online, rules)
        found.dropped.append(Dropped(ONLINE + " (and its heads)", "model (entry)", len(model)))
    elif any(k.startswith(momentum) for k in _stripped(model)):
        found = _split("infomin", "model", model, momentum, [(online, ONLINE)] + rules)
    else:
        method = ckpt.get("method", "this method")
        raise ConversionError(
            f"--ema asks for the momentum encoder, but this checkpoint has none ({method} keeps "
            f"no {momentum}* and model_ema is empty); run again without --ema")
    found.ignored = [k for k in ckpt if k not in own.WEIGHT_ENTRIES]
    found.declared_arch = own.declared_arch(ckpt)
    return found


def _read_pycontrast(ckpt: Mapping, ema: bool) -> Extracted:
    model = _entry(ckpt, "model", "pycontrast")
    _refuse_cmc(model, ("encoder1.", "encoder2."))
    rules = [("head_jig.", "jigsaw head"), ("head.", "projection head")]
    model_ema = ckpt.get("model_ema")
    if not ema:
        found = _split("pycontrast", "model", model, "encoder.", rules)
        if _is_state(model_ema):
            found.dropped.append(Dropped(MOMENTUM, "model_ema (entry)", len(model_ema)))
    elif _is_state(model_ema):
        found = _split("pycontrast", "model_ema", model_ema, "encoder.", rules)
        found.dropped.append(Dropped(ONLINE + " (and its heads)", "model (entry)", len(model)))
    else:
        raise ConversionError(
            "--ema asks for the momentum encoder, but this PyContrast checkpoint has no "
            "model_ema (only MoCo-queue methods such as MoCo, MoCov2 and InfoMin keep one; "
            "memory-bank methods do not); run again without --ema")
    contrast = ckpt.get("contrast")
    if _is_state(contrast):
        found.dropped.append(Dropped("memory bank / queue", "contrast (entry)", len(contrast)))
    found.ignored = [k for k in ckpt if k not in ("model", "model_ema", "contrast")]
    return found


def _read_moco(ckpt: Mapping, ema: bool) -> Extracted:
    state = _entry(ckpt, "state_dict", "moco")
    v3 = not any(k.startswith("encoder_q.") for k in _stripped(state))
    online, momentum = ("base_encoder.", "momentum_encoder.") if v3 else ("encoder_q.", "encoder_k.")
    rules = [("queue_ptr", "queue pointer"), ("queue", "negative-key queue"),
             ("predictor.", "predictor head")]
    fc = "fc: MoCo's projection head (it lives in the encoder's fc)"
    if ema:
        if not any(k.startswith(momentum) for k in _stripped(state)):
            raise ConversionError(f"--ema: this MoCo checkpoint has no {momentum}* tensors; run again without --ema")
        found = _split("moco", "state_dict", state, momentum, [(online, ONLINE)] + rules, fc)
    else:
        found = _split("moco", "state_dict", state, online, [(momentum, MOMENTUM)] + rules, fc)
    found.ignored = [k for k in ckpt if k != "state_dict"]
    found.declared_arch = ckpt.get("arch") if isinstance(ckpt.get("arch"), str) else None
    return found


def _read_sololearn(ckpt: Mapping, ema: bool) -> Extracted:
    state = _entry(ckpt, "state_dict", "sololearn")
    rules = [("momentum_projector.", "momentum projection head"), ("projector.", "projection head"),
             ("predictor.", "predictor head"), ("momentum_classifier.", "online linear probe"),
             ("classifier.", "online linear probe"), ("queue", "negative-key queue")]
    if ema:
        if not any(k.startswith("momentum_backbone.") for k in _stripped(state)):
            raise ConversionError(
                "--ema: this solo-learn checkpoint has no momentum_backbone.* (the method keeps "
                "no momentum encoder); run again without --ema")
        found = _split("sololearn", "state_dict", state, "momentum_backbone.",
                       [("backbone.", ONLINE)] + rules)
    else:
        found = _split("sololearn", "state_dict", state, "backbone.",
                       [("momentum_backbone.", MOMENTUM)] + rules)
    found.ignored = [k for k in ckpt if k != "state_dict"]
    return found


def _read_torchvision(ckpt: Mapping, ema: bool) -> Extracted:
    if ema:
        raise ConversionError(
            "--ema: a torchvision state dict holds a single network, there is no momentum "
            "encoder in it; run again without --ema")
    plain = _plain_state(ckpt)
    if plain is None:
        raise ConversionError(
            "not a torchvision ResNet state dict: found no conv1.weight / layer1-4.* keys "
            f"(with or without module.) at the top level or under state_dict/model; top-level "
            f"entries: {_preview(ckpt)}")
    name, state = plain
    found = _split("torchvision", name, state, "", [])
    found.ignored = [k for k in ckpt if k != name] if name else [k for k, v in ckpt.items() if not _is_array(v)]
    found.declared_arch = ckpt.get("arch") if isinstance(ckpt.get("arch"), str) else None
    return found


READERS: dict[str, Callable] = {
    "infomin": _read_infomin,
    "pycontrast": _read_pycontrast,
    "moco": _read_moco,
    "sololearn": _read_sololearn,
    "torchvision": _read_torchvision,
}


def _split(fmt, entry, state, root, rules, fc_reason=FC_HEAD) -> Extracted:
    """Keep `state`'s tensors under `root` (DDP prefix removed); account for all the others."""
    backbone, groups = {}, OrderedDict()
    where = f"{entry}[" if entry else "["
    for key, value in state.items():
        bare = key[len(DDP):] if key.startswith(DDP) else key
        ddp = key[: len(key) - len(bare)]
        if bare.startswith(root) and not bare[len(root):].startswith("fc."):
            backbone[bare[len(root):]] = _as_tensor(key, value)
            continue
        if bare.startswith(root):
            reason, pattern = fc_reason, f"{ddp}{root}fc.*"
        else:
            hit = next(((p, r) for p, r in rules if bare.startswith(p)), None)
            if hit is None:
                reason, pattern = "not part of the backbone", f"{ddp}{bare.split('.')[0]}" + (".*" if "." in bare else "")
            else:
                reason, pattern = hit[1], f"{ddp}{hit[0]}*" if hit[0].endswith(".") else key
        groups[(reason, pattern)] = groups.get((reason, pattern), 0) + 1
    prefix = DDP if any(k.startswith(DDP) for k in state) else ""
    dropped = [Dropped(r, f"{entry}: {p}" if entry else p, n) for (r, p), n in groups.items()]
    return Extracted(fmt, f"{where}{prefix}{root}*]", backbone, dropped)


def _refuse_cmc(state: Mapping, prefixes) -> None:
    keys = [p for p in prefixes if any(k.startswith(p) for k in _stripped(state))]
    if keys:
        raise ConversionError(CMC_REFUSAL.format(keys=", ".join(k + "*" for k in keys)))


def _entry(ckpt: Mapping, name: str, fmt: str) -> Mapping:
    value = ckpt.get(name)
    if not _is_state(value):
        raise ConversionError(
            f"not a {fmt} checkpoint: it has no '{name}' dictionary of tensors (top-level "
            f"entries: {_preview(ckpt)}); pick another --format or leave it on auto")
    return value


def _plain_state(ckpt: Mapping):
    """(entry name, state) of a torchvision ResNet state dict at the top level or one level down."""
    candidates = [("", {k: v for k, v in ckpt.items() if _is_array(v)})]
    candidates += [(n, ckpt[n]) for n in ("state_dict", "model") if _is_state(ckpt.get(n))]
    for name, state in candidates:
        bare = {k[len(DDP):] if k.startswith(DDP) else k: v for k, v in state.items()}
        if looks_like_resnet(bare):
            return name, state
    return None


def _stripped(state: Mapping):
    return [k[len(DDP):] if k.startswith(DDP) else k for k in state]


def _is_array(value) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _is_state(value) -> bool:
    return isinstance(value, Mapping) and len(value) > 0 and all(isinstance(k, str) for k in value)


def _as_tensor(key: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ConversionError(f"{key} is a {type(value).__name__}, not a tensor; the checkpoint is malformed")


def _preview(ckpt: Mapping, limit: int = 8) -> str:
    keys = [str(k) for k in ckpt]
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "") or "(none)"
