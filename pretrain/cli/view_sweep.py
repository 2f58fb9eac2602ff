"""`infomin-view-sweep` / `tools/view_sweep.py`: sweep one view knob and plot linear accuracy
against I_NCE (`infomin.pretrain.view_sweep`, whose docstring the help shows).

    infomin-view-sweep --config-file configs/views/sweep_crop_min_moco_R50_100ep.yaml \\
        --knob crop_min --values 0.08,0.2,0.4,0.6,0.8 --output-dir out/crop_sweep

A rerun into the same --output-dir resumes (finished points are kept); one with other settings is
refused (`infomin.pretrain.view_sweep.SweepSettingsError`).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from infomin.cli.common import UsageError, run_cli, user_message
from infomin.datasets.builtin import VIEW_DATA
from infomin.device import resolve_device

from .. import view_sweep

__all__ = ["build_parser", "main"]
PROG = "infomin-view-sweep"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=view_sweep.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="",
                   help="pretraining config for the engine knobs: a YAML file or a packaged name "
                        "(pretrain/*.yaml, views/*.yaml)")
    p.add_argument("--color-config", default="", help="learn-views config for --knob color_split")
    p.add_argument("--knob", required=True, choices=view_sweep.knobs())
    p.add_argument("--values", required=True, help="comma-separated, e.g. 0.08,0.2,0.4 or RGB,Lab,YDbDr")
    p.add_argument("--output-dir", default="output/view_sweep")
    p.add_argument("--data", default="", help="ImageFolder root with train/ and val/ (default: built-in data)")
    p.add_argument("--builtin", default=None, choices=sorted(VIEW_DATA),
                   help="without --data: which built-in set to generate (textured: 800 images, the default; "
                        "solid: 4000 flat-coloured shapes, the CPU sweep's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2: the whole sweep per seed (OUT/seed-N) and OUT/sweep.csv, "
                        "sweep.png as mean ± std over them")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--patch-size", type=int, default=16, help="patch_distance: patch side in px")
    p.add_argument("--patch-image-size", type=int, default=0,
                   help="patch_distance: resize the shorter image side to this first (0 = as stored)")
    g = p.add_argument_group("I_NCE critic (identical for every value)")
    g.add_argument("--mi-steps", type=int, default=300)
    g.add_argument("--mi-batch", type=int, default=64, help="in-batch K")
    g.add_argument("--mi-lr", type=float, default=1e-3)
    g.add_argument("--mi-arch", default="resnet18")
    g.add_argument("--mi-width", type=float, default=0.25)
    g.add_argument("--mi-temperature", type=float, default=0.1)
    g.add_argument("--mi-eval-batches", type=int, default=10)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the config")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(PROG, lambda: _run(args))


def _check_args(args) -> None:
    """Everything a sweep needs, checked before any point runs."""
    view_sweep.parse_values(args.knob, args.values)
    args.device = str(resolve_device(args.device, "--device"))
    if args.knob in view_sweep.engine_knobs() and not args.config_file:
        raise UsageError(f"--knob {args.knob} pretrains with the engine: give --config-file "
                         "(e.g. views/sweep_moco_R18_tiny.yaml)")
    if args.data and args.builtin:
        raise UsageError(f"--builtin {args.builtin} picks the generated data; --data {args.data} gives your own: "
                         "pass one of them")
    if args.data and not os.path.isdir(os.path.join(args.data, "train")):
        raise UsageError(f"--data {args.data} has no train/ folder (an ImageFolder root is expected)")
    view_sweep.check_config(args)
    if args.seeds is not None:
        from ..sweep_seeds import parse_seeds

        parse_seeds(args.seeds)


def _run(args) -> int:
    try:
        _check_args(args)
    except (RuntimeError, KeyError) as err:  # as before: any failure of the up-front checks is the input's
        raise UsageError(user_message(err)) from None
    if args.seeds is not None:  # SweepSettingsError (a ValueError): a folder of another sweep
        from ..sweep_seeds import sweep_seeds

        rows = sweep_seeds(args, view_sweep.sweep)
    else:
        rows = view_sweep.sweep(args)
    print(f"wrote {len(rows)} points to {Path(args.output_dir) / 'sweep.csv'} and sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
