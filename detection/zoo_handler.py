"""`infomin://NAME` paths for Detectron2: zoo checkpoints as `MODEL.WEIGHTS`.

Registering an iopath `PathHandler` on Detectron2's `PathManager` is how Detectron2 itself serves
`detectron2://` and `catalog://`; resolving `infomin://InfoMin_800` (an encoder) downloads the
published file, verifies it, converts it once and returns the cached `.pkl`, which
`DetectionCheckpointer` then loads like any Detectron2 model-zoo file. A detector entry (a
published fine-tuned Detectron2 checkpoint) is verified and returned as it is, unconverted.
Importing `infomin.detection` registers the handler.
"""
from __future__ import annotations

from typing import Any

from detectron2.utils.file_io import PathManager
from iopath.common.file_io import PathHandler

from infomin.zoo import detectron2_weights

PREFIX = "infomin://"


class InfominZooHandler(PathHandler):
    """Resolves `infomin://NAME` to the verified Detectron2 weights of zoo model NAME (converted
    for an encoder, as published for a detector)."""

    PREFIX = PREFIX

    def _get_supported_prefixes(self) -> list[str]:
        return [self.PREFIX]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        name = path[len(self.PREFIX):].strip("/")
        if not name:
            raise ValueError(f"{path!r} names no model; write infomin://NAME "
                             "(`infomin-model-zoo list` shows the names)")
        return str(detectron2_weights(name, force=force))

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        if any(c in mode for c in "wax+"):
            raise ValueError(f"{path} is read-only (mode {mode!r})")
        return PathManager.open(self._get_local_path(path), mode, buffering=buffering, **kwargs)

    def _exists(self, path: str, **kwargs: Any) -> bool:
        from infomin.zoo import get_entry, UnknownModelError

        try:
            get_entry(path[len(self.PREFIX):].strip("/"))
        except UnknownModelError:
            return False
        return True

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        return self._exists(path)


_registered = False


def register(path_manager=PathManager) -> None:
    """Register the handler on Detectron2's PathManager (once per process)."""
    global _registered
    if path_manager is PathManager and _registered:
        return
    path_manager.register_handler(InfominZooHandler())
    if path_manager is PathManager:
        _registered = True


register()
