"""Open a checkpoint file safely: `weights_only=True` unless the user vouches for the file."""
from __future__ import annotations

import os
import pickle
import re

import torch

from .errors import ConversionError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_checkpoint(path: str, *, trust: bool = False):
    """Return what `torch.load` reads from `path` (on the CPU).

    Without `trust` only tensors and plain containers are unpickled, so opening a file
    cannot run code from it; a file that needs more is refused with a hint to pass
    `--trust`. Unreadable files (missing, truncated, not a checkpoint) are refused too.
    """
    if not os.path.exists(path):
        raise ConversionError(f"{path}: no such file; give the path of a checkpoint (.pth/.pt/.ckpt)")
    if os.path.isdir(path):
        raise ConversionError(f"{path} is a folder; give the path of a checkpoint file inside it")
    if os.path.getsize(path) == 0:
        raise ConversionError(f"{path} is empty (0 bytes): the file was not written completely; copy or save it again")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if not trust and found:
            raise ConversionError(
                f"{path} holds Python objects other than tensors (first one: {found.group(1)}), and "
                "loading those can run code stored in the file, so it was not opened. If you trust "
                "where the file comes from, run again with --trust."
            ) from None
        raise _unreadable(path, exc) from None
    except (ModuleNotFoundError, AttributeError) as exc:
        # only reachable with --trust: the pickle names a class this environment lacks
        raise ConversionError(
            f"{path} needs {exc} to unpickle; install the package that wrote it (e.g. the training "
            "framework) in this environment, or re-save the checkpoint's state_dict with tensors only"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError, TypeError) as exc:
        raise _unreadable(path, exc) from None
    if isinstance(obj, torch.nn.Module):  # torch.save(model) rather than its state_dict
        obj = obj.state_dict()
    return obj


def _unreadable(path: str, exc: Exception) -> ConversionError:
    text = str(exc).strip()
    detail = text.splitlines()[0].split(". ")[0][:160] if text else "no detail"
    return ConversionError(
        f"{path} is not a readable PyTorch checkpoint: it is truncated, corrupted or a different "
        f"kind of file ({type(exc).__name__}: {detail}). Check the download or copy (size, "
        "checksum) and pass the .pth/.pt/.ckpt file that torch.save wrote."
    )
