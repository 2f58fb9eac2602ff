"""Write the Detectron2 model-zoo pickle atomically (no half-written file, ever)."""
from __future__ import annotations

import os
import pickle

from infomin.atomic import atomic_file

from .errors import ConversionError

AUTHOR = "infomin"


def check_destination(dst: str, src: str | None = None) -> None:
    """Refuse an output path Detectron2 would misread or that cannot be written, before any work."""
    if not dst.endswith(".pkl"):
        raise ConversionError(
            f"output {dst} must end in .pkl: Detectron2's DetectionCheckpointer reads the model-zoo "
            "format (and its name matching) only from .pkl files; e.g. use "
            f"{os.path.splitext(dst)[0]}.pkl")
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise ConversionError(f"output folder {folder} does not exist; create it first")
    if os.path.isdir(dst):
        raise ConversionError(f"output {dst} is a folder; give a file name ending in .pkl")
    if src is not None and os.path.exists(dst) and os.path.samefile(src, dst):
        raise ConversionError(f"output {dst} is the input file; choose another output name")


def write_zoo_pickle(model: dict, dst: str) -> None:
    """Pickle `{"model", "__author__", "matching_heuristics": True}` to `dst` via temp file + os.replace."""
    check_destination(dst)
    payload = {"model": model, "__author__": AUTHOR, "matching_heuristics": True}
    try:
        with atomic_file(dst) as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as exc:
        raise ConversionError(f"could not write {dst}: {exc}") from None
