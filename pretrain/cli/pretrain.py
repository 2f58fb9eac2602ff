"""`infomin-pretrain` / `tools/pretrain.py`: pretrain an encoder from a config file.

    torchrun --nproc_per_node 8 tools/pretrain.py \\
        --config-file configs/pretrain/infomin_R50_800ep.yaml DATA.ROOT /imagenet

A rerun into an OUTPUT_DIR that holds checkpoints is refused: continue it with `--resume auto`,
or start over with `--overwrite`. Ctrl-C (like SIGTERM) checkpoints at the next log point and
exits; `--resume auto` then continues exactly.
"""
from __future__ import annotations

import logging
import sys

from infomin.cli.common import run_cli

from .. import distributed as du
from .common import build_parser, claim_output_dir, merge_output_dir, parse_args, setup_logging

__all__ = ["main"]
PROG = "infomin-pretrain"


def main(argv=None) -> int:
    args = parse_args(build_parser(__doc__, PROG), argv)
    return run_cli(PROG, lambda: _run(args), extra=(FloatingPointError,))  # NaN loss: its advice


def _run(args) -> int:
    from ..config import load_cfg
    from ..engine import run_pretraining

    cfg = load_cfg(args.config_file or None, merge_output_dir(args.opts, args.output_dir))
    claim_output_dir(cfg.OUTPUT_DIR, resume=args.resume, overwrite=args.overwrite)
    setup_logging(cfg.OUTPUT_DIR)
    try:
        path = run_pretraining(cfg, resume=args.resume)
    except BaseException:
        if du.is_initialized():
            du.dist.destroy_process_group()
        raise
    du.shutdown()
    logging.getLogger(__name__).info("Final checkpoint: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
