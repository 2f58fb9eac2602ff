"""`infomin-linear-eval` / `tools/linear_eval.py`: the reference linear protocol on a frozen
pretrained encoder (`infomin.pretrain.linear_eval.run_linear_eval`).

    torchrun --nproc_per_node 8 tools/linear_eval.py --checkpoint out/model_final.pth DATA.ROOT /imagenet
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .. import checkpoint as ckpt_io, distributed as du
from .. import linear_eval
from ..config import cfg_from_yaml_string, load_cfg, validate
from .common import merge_output_dir, parse_args, setup_logging

__all__ = ["main"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=linear_eval.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a pretraining checkpoint (model_final.pth)")
    p.add_argument("--config-file", default="",
                   help="config to use instead of the one stored in the checkpoint")
    p.add_argument("--resume", default=None, metavar="PATH|auto")
    p.add_argument("--output-dir", default=None, help="same as the LINEAR.OUTPUT_DIR option")
    p.add_argument("opts", nargs="*", help="config overrides: KEY VALUE ...")
    args = parse_args(p, argv)
    opts = merge_output_dir(args.opts, args.output_dir, key="LINEAR.OUTPUT_DIR")
    try:
        if args.config_file:
            cfg = load_cfg(args.config_file, opts)
        else:
            cfg = cfg_from_yaml_string(ckpt_io.load_checkpoint(args.checkpoint)["config"])
            cfg.merge_from_list(opts)
            validate(cfg)
            cfg.freeze()
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"Config error: {e.args[0] if e.args else e}") from None
    setup_logging(cfg.LINEAR.OUTPUT_DIR or os.path.join(cfg.OUTPUT_DIR, "linear_eval"), "linear_log.txt")
    try:
        result = linear_eval.run_linear_eval(cfg, args.checkpoint, resume=args.resume)
    finally:
        if du.is_initialized():
            du.dist.destroy_process_group()
    if du.get_rank() == 0:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
