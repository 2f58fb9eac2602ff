"""What the pretraining layer's commands share: `--config-file/--resume/--overwrite/--output-dir`
flags that may come after the KEY VALUE opts, `--output-dir` as an opt, rank-aware logging, and
the refusal to start a run over a finished one."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from infomin.cli.common import UsageError, refuse_or_move_aside

# a pretraining run's files in OUTPUT_DIR: its checkpoints (which make a rerun a refusal) and the
# rest of the run (moved aside with them by --overwrite, so old and new logs never mix)
RUN_CHECKPOINTS = ("model_final.pth", "checkpoint_*.pth")
RUN_FILES = ("log.txt", "metrics.jsonl", "config.yaml", "tb", "linear_eval")


def build_parser(description: str, prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="", metavar="FILE",
                   help="a YAML file, or a packaged config name such as pretrain/infomin_R50_800ep.yaml")
    p.add_argument("--resume", default=None, metavar="PATH|auto",
                   help="continue from a checkpoint, or `auto` for the newest one in the output dir")
    add_overwrite_flag(p)
    p.add_argument("--output-dir", default=None, help="same as the OUTPUT_DIR option")
    p.add_argument("opts", nargs="*", help="config overrides: KEY VALUE ...")
    return p


def add_overwrite_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an output dir that holds a previous run: its files are moved "
                        "into OUTPUT_DIR/replaced-<time>/ (without it such a rerun is refused)")


def parse_args(parser: argparse.ArgumentParser, argv):
    """Flags may come before or after the KEY VALUE opts (`... DATA.ROOT /x --resume auto`)."""
    return parser.parse_intermixed_args(argv)


def merge_output_dir(opts: list[str], output_dir: str | None, key: str = "OUTPUT_DIR") -> list[str]:
    """--output-dir as an opt; giving both it and a different KEY VALUE is an error, not a guess."""
    opts = list(opts)
    if output_dir is None:
        return opts
    for k, v in zip(opts[0::2], opts[1::2]):
        if k == key and v != output_dir:
            raise UsageError(f"--output-dir {output_dir!r} contradicts {key} {v!r}; give only one.")
    return opts + [key, output_dir]


def is_rank0() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


def claim_output_dir(folder: str, *, resume: str | None, overwrite: bool, checkpoints=RUN_CHECKPOINTS,
                     run_files=RUN_FILES, setting: str = "OUTPUT_DIR") -> None:
    """Refuse a fresh run (no --resume) into a folder holding a previous run's checkpoints;
    --overwrite moves that run aside instead (rank 0; the other ranks only check)."""
    if resume:
        if overwrite:
            raise UsageError("--resume continues the run in the output dir and --overwrite starts over; "
                             "give only one.")
        return
    refuse_or_move_aside(folder, checkpoints, also=run_files, overwrite=overwrite, move=is_rank0(),
                         what="a previous run's checkpoints",
                         advice=f"continue it with --resume auto (same {setting})")


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted: a command run in-process (a
    test, a notebook) may swap stderr and close the old one, which a handler bound to it at setup
    would keep writing to ("I/O operation on closed file")."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(output_dir: str | None, name: str = "log.txt") -> None:
    """Console logging on rank 0 (warnings elsewhere), plus OUTPUT_DIR/log.txt on rank 0."""
    rank = int(os.environ.get("RANK", 0))
    handlers = [_CurrentStderr()]
    if rank == 0 and output_dir:
        os.makedirs(output_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(output_dir, name)))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[%(asctime)s r{rank}] %(name)s %(levelname)s: %(message)s",
                        handlers=handlers, force=True)
