#!/usr/bin/env python
"""Mask R-CNN training speed with polygon vs bitmask ground-truth masks (`INPUT.MASK_FORMAT`).

Why: with polygon masks Detectron2 rasterises every positive RoI's target mask in Python on the
CPU, inside the training step (`PolygonMasks.crop_and_resize`); with bitmasks the loader workers
rasterise each object once and the RoI crops are one `roi_align` on the model's device. On a GPU
the polygon path made the study's Mask R-CNN runs CPU-bound (1.3 it/s on an H200 at batch 8).
This trains the study's COCO detector (random init) on the built-in scenes for a few iterations in
each format, in subprocesses, and prints Detectron2's own s/iter for both and their ratio.

    .venv/bin/python benchmarks/bench_mask_format.py --device cpu --iters 30
    python benchmarks/bench_mask_format.py --device cuda --iters 60 --config study/coco_mask_rcnn_R18_FPN_gpu.yaml
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _detector_speed import builtin_scenes, device_name, train_speed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--config", default="study/coco_mask_rcnn_R18_FPN.yaml",
                   help="packaged detection config (infomin.configs name; default: %(default)s)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    from infomin.device import cpu_name

    with tempfile.TemporaryDirectory(prefix="bench-mask-format-") as tmp:
        data = builtin_scenes(Path(tmp) / "data")
        rows = [train_speed(fmt, args.config, ["INPUT.MASK_FORMAT", fmt], device=args.device, iters=args.iters,
                            data=data, work=Path(tmp)) for fmt in ("polygon", "bitmask")]
    ratio = rows[0]["s_per_iter"] / rows[1]["s_per_iter"]
    device = device_name(args.device)
    print(f"Mask R-CNN ({args.config}), {args.iters} iterations, on {device} ({cpu_name()}):")
    for r in rows:
        print(f"  {r['label']:8s} {r['s_per_iter']:.4f} s/iter  ({r['wall_s']} s wall with start-up)")
    print(f"  bitmask is {ratio:.2f}x the speed of polygon")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "config": args.config, "rows": rows,
                                               "speedup": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
