"""Checkpoint files of a run: atomic writes, naming, auto-resume, pruning, the rank-0 saver.

The pretraining payload itself is defined in `infomin.checkpoint_format`; this module knows
files. A checkpoint is written (`infomin.atomic.atomic_torch_save`) to a temporary file in the
destination folder, fsynced, then moved into place with os.replace, so a kill leaves either the
old file or the new one, never half of one. Only global rank 0 writes; all ranks read when resuming. Pretraining and linear
evaluation both use `CheckpointFiles` and `Checkpointer`, with their own file names.
"""
from __future__ import annotations

import glob
import logging
import os
import random
import re
import warnings
from typing import Callable

import numpy as np
import torch

from infomin import checkpoint_format as fmt
from infomin.atomic import atomic_torch_save

from . import distributed as du

logger = logging.getLogger(__name__)

FORMAT = fmt.FORMAT
FORMAT_VERSION = fmt.FORMAT_VERSION
FINAL_NAME = "model_final.pth"
PERIODIC_NAME = "checkpoint_{:08d}.pth"


class CheckpointFiles:
    """A run's checkpoint names in one folder: `final` when it completed, `periodic` before.

    `periodic` holds `{:08d}` for the iteration (every one is a separate file) or is a fixed
    name (one rolling file). `.tmp-*` half-written temporaries never match.
    """

    def __init__(self, output_dir: str, final: str = FINAL_NAME, periodic: str = PERIODIC_NAME,
                 where: str = "OUTPUT_DIR"):
        self.output_dir, self.final, self.periodic, self.where = output_dir, final, periodic, where
        head, field, tail = periodic.partition("{:08d}")
        self._numbered = bool(field)
        self._regex = re.compile(f"^{re.escape(head)}(\\d{{8}})" + re.escape(tail) + "$" if self._numbered
                                 else f"^{re.escape(periodic)}$")
        self._glob = head + "*" + tail if self._numbered else periodic

    def path(self, iteration: int | None = None, final: bool = False) -> str:
        name = self.final if final else self.periodic.format(iteration)
        return os.path.join(self.output_dir, name)

    def periodic_files(self) -> dict[int, str]:
        """iteration -> path of every periodic checkpoint (a fixed name counts as iteration 0)."""
        found = {}
        for path in glob.glob(os.path.join(glob.escape(self.output_dir), self._glob)):
            m = self._regex.match(os.path.basename(path))
            if m:
                found[int(m.group(1)) if self._numbered else 0] = path
        return found

    def find_latest(self) -> str | None:
        """The file to auto-resume from: the final one if the run finished, else the newest."""
        final = self.path(final=True)
        if os.path.isfile(final):
            return final
        found = self.periodic_files()
        return found[max(found)] if found else None

    def resolve_resume(self, resume: str | None) -> str | None:
        """`None` -> fresh start; `auto` -> newest in the folder (fresh if none); else a path."""
        if not resume:
            return None
        if resume == "auto":
            return self.find_latest()
        if not os.path.isfile(resume):
            raise FileNotFoundError(
                f"--resume {resume!r}: no such checkpoint. Pass a {self._glob} file, or `auto` to "
                f"continue from the newest one in {self.where} ({self.output_dir})."
            )
        return resume

    def prune(self, keep_iteration: Callable[[int], bool]) -> None:
        """Remove the periodic checkpoints whose iteration `keep_iteration(it)` rejects."""
        for it, path in self.periodic_files().items():
            if not keep_iteration(it):
                os.remove(path)


class Checkpointer:
    """Saves a run's state on rank 0 with every rank's RNG states; all ranks call `save`.

    `payload(rngs, iteration)` builds the dict to write; `keep(iteration, final)` returns the
    rule for `CheckpointFiles.prune` after a save (None: prune nothing).
    """

    def __init__(self, files: CheckpointFiles, payload: Callable[[list, int], dict],
                 keep: Callable[[int, bool], Callable[[int], bool] | None] = lambda it, final: None):
        self.files, self.payload, self.keep = files, payload, keep

    def save(self, iteration: int, final: bool = False) -> str:
        path = self.files.path(iteration, final)
        rngs = du.all_gather_object(rng_state())
        if du.get_rank() == 0:
            atomic_torch_save(path, self.payload(rngs, iteration))
            rule = self.keep(iteration, final)
            if rule is not None:
                self.files.prune(rule)
            logger.info("Saved %s", path)
        du.barrier()
        return path


def restore_rng(ranks: list, fallback_seed: Callable[[], None]) -> None:
    """Put this rank's saved RNG streams back; another world size reseeds via `fallback_seed`."""
    rank, world = du.get_rank(), du.get_world_size()
    if len(ranks) == world:
        set_rng_state(ranks[rank])
    else:
        fallback_seed()


def checkpoint_name(iteration: int) -> str:
    return PERIODIC_NAME.format(iteration)


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
    """The pretraining checkpoint to auto-resume from: model_final.pth if the run finished,
    else the checkpoint with the highest iteration."""
    return CheckpointFiles(output_dir).find_latest()


def resolve_resume(resume: str | None, output_dir: str) -> str | None:
    """`None` -> fresh start; `auto` -> newest in output_dir (fresh if none); else a path."""
    return CheckpointFiles(output_dir).resolve_resume(resume)


def load_checkpoint(path: str) -> dict:
    """Load and check a pretraining checkpoint (weights_only: no code runs from the file); a file
    that cannot be one is a ValueError saying why in a few words."""
    try:
        with warnings.catch_warnings():  # torch's note on a foreign pickle protocol: the error below says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return fmt.load(path)
    except ValueError as err:
        if err.__cause__ is None:  # read, but not a pretraining checkpoint: the format's own message
            raise
        raise ValueError(f"{path} is not a readable infomin pretraining checkpoint: "
                         f"{_unreadable_reason(path, err.__cause__)}; give a model_final.pth or "
                         "checkpoint_*.pth written by infomin-pretrain.") from None


def _unreadable_reason(path: str, cause: BaseException) -> str:
    import pickle

    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "it is a folder"
    if os.path.getsize(path) == 0:
        return "the file is empty"
    if isinstance(cause, EOFError):
        return "the file is truncated"
    if isinstance(cause, pickle.UnpicklingError):
        return "it holds pickled Python objects (e.g. a Detectron2 .pkl), not a torch checkpoint of tensors"
    if isinstance(cause, RuntimeError) and "zip" in str(cause).lower():
        return "it is not a torch checkpoint (not a zip archive)"
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"


def prune(output_dir: str, keep_iteration) -> None:
    """Remove checkpoint_*.pth files whose iteration `keep_iteration(it)` rejects."""
    CheckpointFiles(output_dir).prune(keep_iteration)
