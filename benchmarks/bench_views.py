"""View pairs per second per core: our fast pipeline vs a plain torchvision-PIL pipeline.

Both build the same policy (default: InfoMin's D with the jigsaw view, i.e. two 224 px views plus
nine 64 px tiles per image) from JPEG files, in one process with one torch thread, so the figures are
per core; time is this process's CPU time, so other jobs on a shared machine do not count. Rounds alternate between the two pipelines over the same files and the median per-round
rate is reported, which keeps a noisy shared machine from favouring either side.

    python benchmarks/bench_views.py                 # scikit-image's sample photos, as JPEG, 300-1411 px
    python benchmarks/bench_views.py --images DIR    # your own JPEGs (e.g. an ImageNet class folder)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from infomin.views import build_multiview_transform, build_reference_transform
from infomin.device import cpu_name

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "stereo_motorcycle")


def write_samples(folder: Path, quality: int = 90) -> list[Path]:
    """scikit-image's colour sample photos (300-1411 px) written as JPEG files."""
    import skimage.data

    paths = []
    for name in SAMPLES:
        try:
            arr = getattr(skimage.data, name)()
        except Exception as exc:  # some samples need the optional pooch download
            print(f"skipping sample {name}: {exc}", file=sys.stderr)
            continue
        arr = arr[0] if isinstance(arr, tuple) else arr
        path = folder / f"{name}.jpg"
        Image.fromarray(np.asarray(arr)[..., :3]).convert("RGB").save(path, quality=quality)
        paths.append(path)
    return paths


def list_jpegs(folder: Path, limit: int) -> list[Path]:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:limit]
    if not paths:
        raise SystemExit(f"no .jpg/.jpeg files under {folder}; pass a folder of JPEG images")
    return paths


def run_round(transform, paths, pairs: int) -> float:
    """Pairs per CPU-second of this process (one thread): per-core throughput, robust to other load."""
    t0 = time.process_time()
    for i in range(pairs):
        transform(Image.open(paths[i % len(paths)]))
    return pairs / (time.process_time() - t0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="D")
    ap.add_argument("--no-jigsaw", action="store_true", help="two views only")
    ap.add_argument("--color-space", default="RGB")
    ap.add_argument("--full-decode", action="store_true", help="turn off the reduced-size JPEG decode of the fast path")
    ap.add_argument("--backend", default="cv2", choices=("cv2", "pil"),
                    help="fast path's photometric ops: OpenCV (default) or the stock PIL ops (reference pixels)")
    ap.add_argument("--images", type=Path, help="folder of JPEGs (default: scikit-image samples)")
    ap.add_argument("--limit", type=int, default=64, help="at most this many files from --images")
    ap.add_argument("--pairs", type=int, default=48, help="view pairs per round")
    ap.add_argument("--rounds", type=int, default=7, help="rounds per pipeline (alternating)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    if args.backend == "cv2":
        import cv2

        cv2.setNumThreads(1)  # one core, like torch above (and like a DataLoader worker should run)
    random.seed(args.seed), np.random.seed(args.seed), torch.manual_seed(args.seed)
    kwargs = dict(policy=args.policy, jigsaw=not args.no_jigsaw, color_space=args.color_space)
    pipelines = {"torchvision-PIL": build_reference_transform(**kwargs), "infomin": build_multiview_transform(fast_decode=not args.full_decode, backend=args.backend,
                                                    **kwargs)}
    with tempfile.TemporaryDirectory() as tmp:
        paths = list_jpegs(args.images, args.limit) if args.images else write_samples(Path(tmp))
        sizes = [Image.open(p).size for p in paths]
        for t in pipelines.values():  # warm-up (imports, caches)
            run_round(t, paths, len(paths))
        rates = {name: [] for name in pipelines}
        for _ in range(args.rounds):
            for name, t in pipelines.items():
                rates[name].append(run_round(t, paths, args.pairs))
    result = {
        "policy": args.policy, "jigsaw": not args.no_jigsaw, "color_space": args.color_space,
        "fast_decode": not args.full_decode, "backend": args.backend,
        "images": len(paths), "min_side": min(min(s) for s in sizes), "max_side": max(max(s) for s in sizes),
        "pairs_per_round": args.pairs, "rounds": args.rounds,
        "torchvision_pairs_per_s_per_core": statistics.median(rates["torchvision-PIL"]),
        "infomin_pairs_per_s_per_core": statistics.median(rates["infomin"]),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores visible, "
                   f"torch {torch.__version__}, Pillow {Image.__version__}",
    }
    result["ratio"] = result["infomin_pairs_per_s_per_core"] / result["torchvision_pairs_per_s_per_core"]
    what = f"policy {args.policy}" + ("" if args.no_jigsaw else " + jigsaw") + f", {args.backend} backend"
    print(f"{what}, {len(paths)} JPEGs of {result['min_side']}-{result['max_side']} px, 1 thread, "
          f"median of {args.rounds} rounds x {args.pairs} pairs")
    print(f"  torchvision-PIL pipeline: {result['torchvision_pairs_per_s_per_core']:7.1f} view pairs/s/core")
    print(f"  infomin fast pipeline:    {result['infomin_pairs_per_s_per_core']:7.1f} view pairs/s/core")
    print(f"  ratio:                    {result['ratio']:7.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
