"""`infomin-pretrain` / `tools/pretrain.py`: pretrain an encoder from a config file.

    torchrun --nproc_per_node 8 tools/pretrain.py \\
        --config-file configs/pretrain/infomin_R50_800ep.yaml DATA.ROOT /imagenet
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from . import distributed as du


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


def main(argv=None) -> int:
    args = parse_args(build_parser(__doc__), argv)
    from .config import load_cfg
    from .engine import run_pretraining

    try:
        cfg = load_cfg(args.config_file or None, merge_output_dir(args.opts, args.output_dir))
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"Config error: {e.args[0] if e.args else e}") from None
    setup_logging(cfg.OUTPUT_DIR)
    from .data import BadImageError

    try:
        path = run_pretraining(cfg, resume=args.resume)
    except (FileNotFoundError, BadImageError) as e:  # missing/bad files, not a bug: no traceback
        raise SystemExit(f"Error: {e}") from None
    finally:
        if du.is_initialized():
            du.dist.destroy_process_group()
    logging.getLogger(__name__).info("Final checkpoint: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
