#!/usr/bin/env python
"""Detector training speed in float32 and with `SOLVER.AMP.ENABLED` (bfloat16 autocast on the CPU,
Detectron2's float16 AMPTrainer on CUDA), for the study's Faster R-CNN and Mask R-CNN.

Why: the detector fine-tunings are four fifths of the CPU study's time; on a CPU with AVX512-BF16
(or AMX) oneDNN runs bfloat16 convolutions and matrix products faster than float32. Each run is
Detectron2's own s/iter over a few iterations of random-init training on the built-in scenes, in a
subprocess; the ratio is float32 time over AMP time, measured in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_detector_amp.py --iters 30
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _detector_speed import builtin_scenes, device_name, train_speed

CONFIGS = ("study/voc_faster_rcnn_R18_FPN_study.yaml", "study/coco_mask_rcnn_R18_FPN_study.yaml")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS),
                   help="packaged detection configs (infomin.configs names; default: the study's)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    from infomin.device import cpu_name

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-detector-amp-") as tmp:
        data = builtin_scenes(Path(tmp) / "data")
        for i, config in enumerate(args.configs):
            rows = [train_speed(f"{i}-{label}", config, ["SOLVER.AMP.ENABLED", str(amp)], device=args.device,
                                iters=args.iters, data=data, work=Path(tmp))
                    for label, amp in (("fp32", False), ("amp", True))]
            results.append({"config": config, "fp32": rows[0], "amp": rows[1],
                            "speedup": rows[0]["s_per_iter"] / rows[1]["s_per_iter"]})
    device = device_name(args.device)
    print(f"{args.iters} training iterations per run, on {device} ({cpu_name()}):")
    for r in results:
        print(f"  {r['config']}: float32 {r['fp32']['s_per_iter']:.4f} s/iter, AMP {r['amp']['s_per_iter']:.4f} "
              f"s/iter: AMP is {r['speedup']:.2f}x the speed of float32")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "cpu": cpu_name(), "iters": args.iters,
                                               "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
