"""Detectron2's own training speed of one detector config under some overrides (shared by the
detector benchmarks): train a few iterations in a subprocess with `infomin-train-net` on the
built-in COCO scenes and read its "Overall training speed" line."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["builtin_scenes", "train_speed", "device_name"]

TRAIN_NET = [sys.executable, "-P", "-m", "infomin.detection.cli.train_net"]
SPEED = re.compile(r"Overall training speed: (\d+) iterations in \S+ \(([\d.]+) s / it\)")


def builtin_scenes(root: Path):
    """The study's detection scenes (the object images cut to one per class: not used here)."""
    from infomin.datasets import generate

    return generate(root, seed=0, scale="study", overrides={"cls_train": 1, "cls_val": 1}, progress=False)


def train_speed(label: str, config: str, overrides: list, *, device: str, iters: int, data, work: Path) -> dict:
    """Seconds per iteration of `config` + `overrides`, random init, no evaluation."""
    from infomin.configs import get_config_file

    out = work / label
    cmd = [*TRAIN_NET, "--config-file", get_config_file(config),
           "--coco-dataset", "bench_det_train", data.coco_train_json, data.coco_train_images,
           "DATASETS.TRAIN", '("bench_det_train",)', "DATASETS.TEST", "()", "MODEL.WEIGHTS", "",
           "MODEL.DEVICE", device, "SOLVER.MAX_ITER", str(iters),
           "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "100000", "TEST.EVAL_PERIOD", "0",
           "SEED", "0", "OUTPUT_DIR", str(out), *overrides]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = (out / "log.txt").read_text() if (out / "log.txt").is_file() else proc.stdout + proc.stderr
    m = SPEED.search(log)
    if proc.returncode != 0 or not m:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise SystemExit(f"the {label} run failed (exit {proc.returncode}):\n{tail}")
    return {"label": label, "s_per_iter": float(m.group(2)), "timed_iters": int(m.group(1)),
            "wall_s": round(time.time() - start, 1)}


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    return device
