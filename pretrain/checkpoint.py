"""Pretraining checkpoints (format: docs/pretrain-checkpoint.md): atomic writes, auto-resume.

A checkpoint is written to a temporary file in the destination folder, fsynced, then moved
into place with os.replace, so a kill leaves either the old file or the new one, never half
of one. Only global rank 0 writes (callers check); all ranks read when resuming.
"""
from __future__ import annotations

import glob
import os
import random
import re

import numpy as np
import torch

import infomin.atomic as infomin_atomic
from infomin.atomic import atomic_file

FORMAT = "infomin.pretrain"
FORMAT_VERSION = 1
_NAME = re.compile(r"^checkpoint_(\d{8})\.pth$")
FINAL_NAME = "model_final.pth"


def checkpoint_name(iteration: int) -> str:
    return f"checkpoint_{iteration:08d}.pth"


def atomic_torch_save(obj, path: str) -> None:
    """torch.save to `path` without ever exposing a partial file there."""
    with atomic_file(path) as f:
        torch.save(obj, f)


def atomic_write_text(text: str, path: str) -> None:
    infomin_atomic.atomic_write_text(path, text)


def rng_state() -> dict:
    """This process's RNG states as tensors/lists only (weights_only-loadable)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def find_latest(output_dir: str) -> str | None:
    """The checkpoint to auto-resume from: model_final.pth if the run finished, else the
    checkpoint with the highest iteration. Temporary files are never candidates."""
    final = os.path.join(output_dir, FINAL_NAME)
    if os.path.isfile(final):
        return final
    best, best_it = None, -1
    for path in glob.glob(os.path.join(output_dir, "checkpoint_*.pth")):
        m = _NAME.match(os.path.basename(path))
        if m and int(m.group(1)) > best_it:
            best, best_it = path, int(m.group(1))
    return best


def resolve_resume(resume: str | None, output_dir: str) -> str | None:
    """`None` -> fresh start; `auto` -> newest in output_dir (fresh if none); else a path."""
    if not resume:
        return None
    if resume == "auto":
        return find_latest(output_dir)
    if not os.path.isfile(resume):
        raise FileNotFoundError(
            f"--resume {resume!r}: no such checkpoint. Pass a checkpoint_*.pth file, or `auto` "
            f"to continue from the newest one in OUTPUT_DIR ({output_dir})."
        )
    return resume


def load_checkpoint(path: str) -> dict:
    """Load and check a pretraining checkpoint (weights_only: no code runs from the file)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"Cannot read checkpoint {path!r}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(
            f"{path!r} is not an infomin pretraining checkpoint (no format={FORMAT!r} entry). "
            "Use infomin-convert-pretrained for other checkpoint layouts."
        )
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} has format_version {ckpt['format_version']}; this infomin reads up to "
            f"{FORMAT_VERSION}. Upgrade infomin."
        )
    return ckpt


def prune(output_dir: str, keep_iteration) -> None:
    """Remove checkpoint_*.pth files whose iteration `keep_iteration(it)` rejects."""
    for path in glob.glob(os.path.join(output_dir, "checkpoint_*.pth")):
        m = _NAME.match(os.path.basename(path))
        if m and not keep_iteration(int(m.group(1))):
            os.remove(path)
