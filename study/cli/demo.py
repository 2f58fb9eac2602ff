"""`infomin-demo` (also `make demo`, `tools/demo.py`): the study's command line."""
from __future__ import annotations

import argparse
import logging
import sys

from ..run import SCALES, STAGES, run_demo

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infomin-demo",
        description="Run the whole InfoMin study on the built-in data: pretrain (InfoMin, "
                    "supervised; plus random init), convert, fine-tune Faster R-CNN (VOC layout) "
                    "and Mask R-CNN (COCO layout), evaluate, and write OUTPUT/report.md.")
    p.add_argument("--quick", action="store_true",
                   help="a few iterations per stage (about 20 s on 2 idle CPU cores; for tests)")
    p.add_argument("--output", default="output/demo", help="folder for everything (default: %(default)s)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="data and training seed (default: %(default)s)")
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2: the whole study per seed (OUTPUT/seed-N), and a "
                        "report of mean +- std whose verdict counts a margin only beyond the spread")
    p.add_argument("--jobs", type=int, default=1,
                   help="with --seeds: run this many seeds at once, each in its own process with its "
                        "log in OUTPUT/seed-N/demo.log (for a GPU; on a 2-core CPU keep 1)")
    p.add_argument("--scale", default="auto", choices=("auto", *SCALES),
                   help="data size and schedules (default: %(default)s = gpu on a CUDA device, else demo)")
    p.add_argument("--stage", choices=STAGES, help="rerun this one stage (its inputs must exist)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        results = run_demo(args.output, quick=args.quick, device=args.device, seed=args.seed,
                           seeds=args.seeds, scale=args.scale,
                           stage=args.stage, jobs=args.jobs)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"infomin-demo: error: {exc}", file=sys.stderr)
        return 2
    report = results.get("report")
    if report:
        print(report["table"])
        print(report["verdict"])
        print(f"Report: {report['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
