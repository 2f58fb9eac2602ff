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
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN_NET = [sys.executable, "-P", "-m", "infomin.detection.cli.train_net"]
SPEED = re.compile(r"Overall training speed: (\d+) iterations in \S+ \(([\d.]+) s / it\)")


def run(fmt: str, args, data, work: Path) -> dict:
    from infomin.configs import get_config_file

    out = work / fmt
    cmd = [*TRAIN_NET, "--config-file", get_config_file(args.config),
           "--coco-dataset", "bench_mask_train", data.coco_train_json, data.coco_train_images,
           "DATASETS.TRAIN", '("bench_mask_train",)', "DATASETS.TEST", "()", "MODEL.WEIGHTS", "",
           "MODEL.DEVICE", args.device, "INPUT.MASK_FORMAT", fmt, "SOLVER.MAX_ITER", str(args.iters),
           "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "100000", "TEST.EVAL_PERIOD", "0",
           "SEED", "0", "OUTPUT_DIR", str(out)]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = (out / "log.txt").read_text() if (out / "log.txt").is_file() else proc.stdout + proc.stderr
    m = SPEED.search(log)
    if proc.returncode != 0 or not m:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise SystemExit(f"bench_mask_format: the {fmt} run failed (exit {proc.returncode}):\n{tail}")
    return {"format": fmt, "s_per_iter": float(m.group(2)), "timed_iters": int(m.group(1)),
            "wall_s": round(time.time() - start, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--config", default="study/coco_mask_rcnn_R18_FPN.yaml",
                   help="packaged detection config (infomin.configs name; default: %(default)s)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    from infomin.datasets import generate
    from infomin.device import cpu_name

    with tempfile.TemporaryDirectory(prefix="bench-mask-format-") as tmp:
        data = generate(Path(tmp) / "data", seed=0, scale="study", overrides={"cls_train": 1, "cls_val": 1},
                        progress=False)
        rows = [run(fmt, args, data, Path(tmp)) for fmt in ("polygon", "bitmask")]
    ratio = rows[0]["s_per_iter"] / rows[1]["s_per_iter"]
    device = args.device
    if device.startswith("cuda"):
        import torch

        device = torch.cuda.get_device_name(0)
    print(f"Mask R-CNN ({args.config}), {args.iters} iterations, on {device} ({cpu_name()}):")
    for r in rows:
        print(f"  {r['format']:8s} {r['s_per_iter']:.4f} s/iter  ({r['wall_s']} s wall with start-up)")
    print(f"  bitmask is {ratio:.2f}x the speed of polygon")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "config": args.config, "rows": rows,
                                               "speedup": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
