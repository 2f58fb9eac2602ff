"""Atomic file writes: a reader, or a run killed mid-write, never sees half a file.

One family, path first: `atomic_write_text(path, text)`, `atomic_torch_save(path, obj)`,
`atomic_file(path)` for any other writer and `atomic_write_path(path, write)` for libraries that
want a file name. Every writer in the project (checkpoints, converted weights, download metadata, reports, sweep
results) goes through here: write a temporary file in the destination's folder, fsync it, give it
the permissions of any new file (umask), rename it over the destination, then fsync the folder so
the rename survives a crash. On any error the temporary file is removed and the destination is
left as it was.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["atomic_file", "atomic_write_path", "atomic_write_text", "atomic_torch_save"]


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def _temporary_then_replace(path) -> Iterator[str]:
    """Yield a temporary path beside ``path``; move it there if the block succeeds."""
    path = Path(path)
    folder = str(path.parent.resolve())
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_path(path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` (for libraries that want a path: savefig, ...), then move the
    finished file to ``path``. The folder is created if missing."""
    with _temporary_then_replace(path) as tmp:
        write(tmp)


@contextlib.contextmanager
def atomic_file(path, mode: str = "wb") -> Iterator:
    """``with atomic_file(p) as f: f.write(...)``: the file appears at ``p`` only when the block
    finishes without an exception."""
    with _temporary_then_replace(path) as tmp:
        with open(tmp, mode) as f:
            yield f


def atomic_write_text(path, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def atomic_torch_save(path, obj) -> None:
    """``torch.save(obj)`` to ``path`` (checkpoints, view generators)."""
    import torch

    with atomic_file(path) as f:
        torch.save(obj, f)
