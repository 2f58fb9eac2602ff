"""What the pretraining layer's commands share: `--config-file/--resume/--output-dir` flags that
may come after the KEY VALUE opts, `--output-dir` as an opt, and rank-aware logging."""
from __future__ import annotations

import argparse
import logging
import os
import sys


def build_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="", metavar="FILE",
                   help="a YAML file, or a packaged config name such as pretrain/infomin_R50_800ep.yaml")
    p.add_argument("--resume", default=None, metavar="PATH|auto",
                   help="continue from a checkpoint, or `auto` for the newest one in the output dir")
    p.add_argument("--output-dir", default=None, help="same as the OUTPUT_DIR option")
    p.add_argument("opts", nargs="*", help="config overrides: KEY VALUE ...")
    return p


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
            raise SystemExit(f"--output-dir {output_dir!r} contradicts {key} {v!r}; give only one.")
    return opts + [key, output_dir]


def setup_logging(output_dir: str | None, name: str = "log.txt") -> None:
    """Console logging on rank 0 (warnings elsewhere), plus OUTPUT_DIR/log.txt on rank 0."""
    rank = int(os.environ.get("RANK", 0))
    handlers = [logging.StreamHandler(sys.stderr)]
    if rank == 0 and output_dir:
        os.makedirs(output_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(output_dir, name)))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[%(asctime)s r{rank}] %(name)s %(levelname)s: %(message)s",
                        handlers=handlers, force=True)
