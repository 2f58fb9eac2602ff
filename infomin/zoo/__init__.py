"""Model zoo: published checkpoints by name, verified downloads, cached Detectron2 conversions.

`infomin-model-zoo list | download NAME | convert NAME`, and `MODEL.WEIGHTS infomin://NAME` in a
Detectron2 config once `infomin.detection` is imported (see `infomin.detection.zoo_handler`).
"""
from .catalog import CatalogError, UnknownModelError, ZooEntry, get_entry, load_catalog
from .download import (ChecksumError, DownloadError, ZooError, cache_root, checkpoint_path, fetch,
                       import_file)
from .weights import converted_path, detectron2_weights, ensure_converted

__all__ = [
    "CatalogError", "ChecksumError", "DownloadError", "UnknownModelError", "ZooEntry", "ZooError",
    "cache_root", "checkpoint_path", "converted_path", "detectron2_weights", "ensure_converted", "fetch", "get_entry",
    "import_file", "load_catalog",
]
