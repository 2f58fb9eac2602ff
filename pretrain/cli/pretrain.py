"""`infomin-pretrain` / `tools/pretrain.py`: pretrain an encoder from a config file.

    torchrun --nproc_per_node 8 tools/pretrain.py \\
        --config-file configs/pretrain/infomin_R50_800ep.yaml DATA.ROOT /imagenet
"""
from __future__ import annotations

import logging
import sys

from .. import distributed as du
from .common import build_parser, merge_output_dir, parse_args, setup_logging

__all__ = ["main"]


def main(argv=None) -> int:
    args = parse_args(build_parser(__doc__), argv)
    from ..config import load_cfg
    from ..engine import run_pretraining

    try:
        cfg = load_cfg(args.config_file or None, merge_output_dir(args.opts, args.output_dir))
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"Config error: {e.args[0] if e.args else e}") from None
    setup_logging(cfg.OUTPUT_DIR)
    from ..data import BadImageError

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
