"""Detectron2 weights for a zoo model: download, verify, convert once, cache.

The converted file is `<cache>/zoo/<NAME>/<NAME>.d2.pkl` (Detectron2 picks its loader by the
`.pkl` suffix). A stamp beside it records the sha256 of the verified source it came from, so a
cached conversion is reused without re-reading the source, and redone when the source changes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from iopath.common.file_io import file_lock

from .catalog import ZooEntry, get_entry
from .download import (ZooError, checkpoint_path, entry_dir, fetch, import_file, read_pin,
                       write_text_atomic)


def converted_path(entry: ZooEntry, cache: str | os.PathLike | None = None) -> Path:
    return entry_dir(entry, cache) / f"{entry.name}.d2.pkl"


def _stamp_path(converted: Path) -> Path:
    return converted.with_name(converted.name + ".source-sha256")


def _up_to_date(entry: ZooEntry, dst: Path, source: Path) -> bool:
    if not dst.exists():
        return False
    try:
        stamp = _stamp_path(dst).read_text().strip()
    except FileNotFoundError:
        return False
    current = entry.sha256 or read_pin(source)
    return bool(stamp) and stamp == current


def ensure_converted(name: str | ZooEntry, *, cache: str | os.PathLike | None = None,
                     catalog: Mapping[str, ZooEntry] | str | os.PathLike | None = None,
                     file: str | os.PathLike | None = None, trust: bool = False,
                     force: bool = False, progress: bool = True, retries: int = 3,
                     timeout: float = 60.0) -> Path:
    """Path of the Detectron2 `.pkl` for a zoo model, downloading and converting it if needed.

    `file` imports a local copy of the published checkpoint first (verified like a download).
    `trust` is passed to the converter: it allows unpickling objects other than tensors and plain
    containers, which a verified checksum does not make safe by itself; it is never set for you.
    """
    entry = name if isinstance(name, ZooEntry) else get_entry(name, catalog)
    if entry.is_detector:
        raise ZooError(f"{entry.name} is a fine-tuned Detectron2 detector, not an encoder: it needs "
                       f"no conversion. Use MODEL.WEIGHTS infomin://{entry.name} with its config "
                       f"{entry.config} (or `infomin-model-zoo download {entry.name}`).")
    if not entry.convertible:
        raise ZooError(f"{entry.name} cannot be converted to Detectron2: {entry.not_convertible}")
    dst = converted_path(entry, cache)
    src = checkpoint_path(entry, cache)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(str(dst)):
        if file is not None:
            import_file(entry, file, cache)
        elif not force and _up_to_date(entry, dst, src):
            return dst
        src = fetch(entry, cache, progress=progress, retries=retries, timeout=timeout)
        sha = entry.sha256 or read_pin(src)
        from infomin.convert import convert_checkpoint  # the converter team's API

        convert_checkpoint(str(src), str(dst), fmt=entry.format, ema=entry.ema, trust=trust)
        write_text_atomic(_stamp_path(dst), f"{sha}\n")
    return dst


def detectron2_weights(name: str | ZooEntry, *, cache: str | os.PathLike | None = None,
                       catalog: Mapping[str, ZooEntry] | str | os.PathLike | None = None,
                       force: bool = False, progress: bool = True) -> Path:
    """The file `MODEL.WEIGHTS infomin://NAME` loads: a detector's verified checkpoint as
    published (already a Detectron2 checkpoint), or an encoder's cached conversion."""
    entry = name if isinstance(name, ZooEntry) else get_entry(name, catalog)
    if entry.is_detector:
        return fetch(entry, cache, progress=progress)
    return ensure_converted(entry, cache=cache, force=force, progress=progress)
