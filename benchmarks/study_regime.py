"""Why do the study's encoders learn so little? kNN top-1 against pretraining steps, per variant.

Each variant generates (or reuses) a built-in dataset, pretrains InfoMin with the study's config
plus overrides, and records the engine's kNN monitor (every `KNN.PERIOD` epochs), the contrastive
loss, the steps run and the process CPU time (user + sys) the pretraining took. The kNN of the
randomly initialised encoder on the same data is the floor a pretrained encoder must beat (chance
is 20 % on 5 classes).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/study_regime.py --output output/regime \
        --variants s800_q512,s800_q64,s4000_q512

Results are appended to OUTPUT/results.jsonl (one line per finished variant; a rerun skips them).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
from pathlib import Path

# name -> (dataset overrides of SCALES["full"], pretraining overrides of the study's InfoMin config)
_S32 = ["VIEWS.IMAGE_SIZE", "32"]
VARIANTS = {
    # the demo as it is: 800 images at 64 px, queue 512 (64 % of the data), 14 epochs (350 steps)
    "base": ({}, []),
    # 32 px views (a quarter of the pixels), 800 images, queue 512 = 64 % of the data, 500 steps
    "s800_q512": ({}, [*_S32, "SOLVER.EPOCHS", "20", "KNN.PERIOD", "4"]),
    # the same with a queue of 64 (8 % of the data)
    "s800_q64": ({}, [*_S32, "SOLVER.EPOCHS", "20", "KNN.PERIOD", "4", "MODEL.QUEUE_SIZE", "64"]),
    # 5x the images (4000), queue 512 = 13 % of the data, 500 steps
    "s4000_q512": ({"cls_train": 800}, [*_S32, "SOLVER.EPOCHS", "4", "KNN.PERIOD", "1"]),
    # 4000 images, 1000 steps
    "s4000_q512_long": ({"cls_train": 800}, [*_S32, "SOLVER.EPOCHS", "8", "KNN.PERIOD", "1"]),
    # 4000 images at 64 px, 500 steps
    "s4000_64": ({"cls_train": 800}, ["SOLVER.EPOCHS", "4", "KNN.PERIOD", "1"]),
    # 4000 images at 64 px, 1000 steps at a constant lr after the warm-up epoch (no decay)
    "s4000_64_const": ({"cls_train": 800}, ["SOLVER.EPOCHS", "8", "KNN.PERIOD", "1", "SOLVER.SCHEDULE", "step",
                                            "SOLVER.STEPS", "(100,)"]),
    # the supervised baseline (labels) on 4000 images at 32 px, 1000 steps: how fast can shape be learnt?
    "sup_s4000": ({"cls_train": 800}, [*_S32, "SOLVER.EPOCHS", "8", "KNN.PERIOD", "1"], "supervised"),
}


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def random_init_knn(cfg) -> float:
    """kNN top-1 of a freshly initialised encoder (the floor), with the engine's own monitor."""
    import torch

    from infomin.models import build_encoder
    from infomin.pretrain.engine import _knn_monitor

    torch.manual_seed(cfg.SEED)
    enc = build_encoder(cfg.MODEL.ARCH, cfg.MODEL.WIDTH or 1).eval()
    return float(_knn_monitor(cfg, enc, 0, 1, torch.device("cpu"))())


def run_variant(name: str, out: Path, seed: int) -> dict:
    from infomin.configs import get_config_file
    from infomin.datasets import generate
    from infomin.pretrain.config import load_cfg
    from infomin.pretrain.engine import run_pretraining

    data_over, opts, *method = VARIANTS[name]
    config = f"study/pretrain_{method[0] if method else 'infomin'}_R18.yaml"
    tag = "-".join(f"{k}{v}" for k, v in sorted(data_over.items())) or "full"
    data = generate(out / f"data-{tag}-s{seed}", seed=seed, scale="full",
                    overrides={**data_over, "det_train": 8, "det_test": 8}, progress=False)
    run_dir = out / f"{name}-s{seed}"
    cfg = load_cfg(get_config_file(config),
                   ["OUTPUT_DIR", str(run_dir), "DATA.ROOT", str(Path(data.root) / "imagefolder"),
                    "MODEL.DEVICE", "cpu", "SEED", str(seed), "LOG.TENSORBOARD", "False",
                    "LOG.PROGRESS_BAR", "False", "CHECKPOINT.PERIOD", "100", *opts])
    floor = random_init_knn(cfg)
    cpu0, wall0 = _cpu_seconds(), time.time()
    run_pretraining(cfg)
    cpu, wall = _cpu_seconds() - cpu0, time.time() - wall0
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    knn = [(r["iteration"], r["knn_top1"]) for r in records if "knn_top1" in r]
    loss = [(r["iteration"], r["loss"]) for r in records if "loss" in r]
    steps = max(i for i, _ in loss) if loss else 0
    return {"variant": name, "seed": seed, "images": len(list(Path(cfg.DATA.ROOT, "train").rglob("*.jpg"))),
            "config": config, "queue": cfg.MODEL.QUEUE_SIZE, "image_size": cfg.VIEWS.IMAGE_SIZE, "steps": steps,
            "ln_k1": math.log(cfg.MODEL.QUEUE_SIZE + 1) if cfg.MODEL.QUEUE_SIZE else None, "knn_random_init": floor, "knn": knn,
            "loss": loss[:: max(1, len(loss) // 12)] + loss[-1:], "cpu_s": round(cpu, 1),
            "wall_s": round(wall, 1), "load": os.getloadavg()}


def plot(results_file: Path, path: Path) -> None:
    """kNN top-1 against pretraining steps per variant, each with its random-init floor (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in Path(results_file).read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["knn"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, r in enumerate(rows):
        colour = f"C{k}"
        label = (f"{r['variant']}: {'supervised' if 'supervised' in r.get('config', '') else 'InfoMin'}, "
                 f"{r['images']} img, {r['image_size']} px" + (f", queue {r['queue']}" if r.get("queue") else ""))
        xs, ys = zip(*r["knn"])
        ax.plot(xs, ys, "o-", color=colour, label=label)
        ax.axhline(r["knn_random_init"], color=colour, ls="--", lw=0.8)
    ax.axhline(20, color="k", lw=0.8)
    ax.set(xlabel="pretraining steps (batch 32)", ylabel="kNN top-1 on val (%)",
           title="kNN vs steps; dashed: the same data's random-init encoder; black: chance")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="output/regime")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default="", help="only draw OUTPUT/results.jsonl as this PNG")
    args = p.parse_args(argv)
    if args.plot:
        plot(Path(args.output) / "results.jsonl", Path(args.plot))
        return 0
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    done_file = out / "results.jsonl"
    done = set()
    if done_file.is_file():
        done = {(r["variant"], r["seed"]) for r in map(json.loads, done_file.read_text().splitlines())}
    for name in args.variants.split(","):
        if name not in VARIANTS:
            p.error(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        if (name, args.seed) in done:
            continue
        row = run_variant(name, out, args.seed)
        print(json.dumps({k: row[k] for k in ("variant", "knn_random_init", "knn", "steps", "cpu_s", "wall_s")}),
              flush=True)
        with done_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
