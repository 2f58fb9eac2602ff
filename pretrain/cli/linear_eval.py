"""`infomin-linear-eval` / `tools/linear_eval.py`: the reference linear protocol on a frozen
pretrained encoder (`infomin.pretrain.linear_eval.run_linear_eval`).

    torchrun --nproc_per_node 8 tools/linear_eval.py --checkpoint out/model_final.pth DATA.ROOT /imagenet

A rerun into a LINEAR.OUTPUT_DIR that holds a linear evaluation is refused: continue it with
`--resume auto`, or start over with `--overwrite`. Only rank 0 prints the result.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from infomin.cli.common import run_cli

from .. import checkpoint as ckpt_io, distributed as du
from .. import linear_eval
from ..config import cfg_from_yaml_string, load_cfg, validate
from .common import add_overwrite_flag, claim_output_dir, is_rank0, merge_output_dir, parse_args, setup_logging

__all__ = ["main"]
PROG = "infomin-linear-eval"
# a linear evaluation's files in its output folder
LINEAR_CHECKPOINTS = (linear_eval.STATE_NAME, linear_eval.FINAL_NAME, "results.json")
LINEAR_FILES = ("linear_log.txt",)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=linear_eval.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a pretraining checkpoint (model_final.pth)")
    p.add_argument("--config-file", default="",
                   help="config to use instead of the one stored in the checkpoint")
    p.add_argument("--resume", default=None, metavar="PATH|auto")
    add_overwrite_flag(p)
    p.add_argument("--output-dir", default=None, help="same as the LINEAR.OUTPUT_DIR option")
    p.add_argument("opts", nargs="*", help="config overrides: KEY VALUE ...")
    args = parse_args(p, argv)
    return run_cli(PROG, lambda: _run(args), interrupted="every finished epoch is saved: continue with "
                                                         "--resume auto (same output dir)")


def _run(args) -> int:
    opts = merge_output_dir(args.opts, args.output_dir, key="LINEAR.OUTPUT_DIR")
    if args.config_file:
        cfg = load_cfg(args.config_file, opts)
    else:
        cfg = cfg_from_yaml_string(ckpt_io.load_checkpoint(args.checkpoint)["config"])
        cfg.merge_from_list(opts)
        validate(cfg)
        cfg.freeze()
    out_dir = cfg.LINEAR.OUTPUT_DIR or os.path.join(cfg.OUTPUT_DIR, "linear_eval")
    claim_output_dir(out_dir, resume=args.resume, overwrite=args.overwrite, checkpoints=LINEAR_CHECKPOINTS,
                     run_files=LINEAR_FILES, setting="LINEAR.OUTPUT_DIR")
    setup_logging(out_dir, "linear_log.txt")
    try:
        result = linear_eval.run_linear_eval(cfg, args.checkpoint, resume=args.resume)
    except BaseException:
        if du.is_initialized():
            du.dist.destroy_process_group()
        raise
    du.shutdown()
    if is_rank0():  # the process group is gone by now: its rank would be 0 everywhere
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
