"""`infomin-learn-views` / `tools/learn_views.py`: learn a colour-channel view split with InfoMin's
adversarial objective and compare it with the raw split (`infomin.viewlearn`).

    infomin-learn-views --config-file views/stl10_semi_vp_RGB.yaml OUTPUT_DIR out/stl10_semi

A rerun into an OUTPUT_DIR that holds a learned generator is refused (pass --overwrite to start
over; the old files are moved into OUTPUT_DIR/replaced-<time>/).
"""
from __future__ import annotations

import argparse
import os
import sys

from infomin import viewlearn
from infomin.cli.common import refuse_or_move_aside, run_cli
from infomin.device import resolve_device

__all__ = ["main"]
PROG = "infomin-learn-views"
# what a run writes (the built-in data under builtin_data/ is a reusable cache, not an output)
OUTPUTS = ("generator.pt", "summary.json")
OTHER_OUTPUTS = ("history.csv", "view_learning.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=viewlearn.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="", help="a YAML file, or a packaged config name (views/*.yaml)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an OUTPUT_DIR that holds a previous run (its files are moved aside)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. LEARN.MODE semi")
    args = p.parse_args(argv)
    if "--overwrite" in args.opts:  # also after the KEY VALUE opts
        args.opts.remove("--overwrite")
        args.overwrite = True
    return run_cli(PROG, lambda: _run(args))


def _run(args) -> int:
    cfg = viewlearn.load_cfg(args.config_file or None, args.opts)
    if cfg.DATA.ROOT and not os.path.isdir(cfg.DATA.ROOT):
        raise FileNotFoundError(f"DATA.ROOT {cfg.DATA.ROOT} is not a folder: give an STL-10 root "
                                "(with stl10_binary/) or an ImageFolder root (train/, val/)")
    resolve_device(cfg.DEVICE, "DEVICE")
    refuse_or_move_aside(cfg.OUTPUT_DIR, OUTPUTS, also=OTHER_OUTPUTS, overwrite=args.overwrite,
                         what="the views of a previous run", advice="")
    summary = viewlearn.run(cfg)
    for name, r in summary["results"].items():
        print(f"{name:32s} I_NCE {r['i_nce']:.3f} ± {r['i_nce_std']:.3f} nats (K={r['k']}, log K={r['log_k']:.2f})"
              f"   linear probe {r['accuracy']:.1f}%")
    print(f"outputs in {cfg.OUTPUT_DIR}: generator.pt, history.csv, summary.json, view_learning.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
