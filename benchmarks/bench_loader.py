"""View pairs per second: the CPU loader (workers decode and augment) against the device views
(workers read bytes, the device decodes and augments batches: DATA.LOADER gpu), same JPEGs.

Policy D with the jigsaw view (InfoMin: two 224 px views and nine 64 px tiles per image), on
generated ImageNet-sized JPEGs (about 500 x 375 on average), through the pretraining loader
(RobustImageFolder, ResumableSampler, per-sample seeding). Figures are wall-clock rates:

* cpu_loader: DataLoader with --workers processes running the cv2 pipeline (the default loader);
* device_views: the device half alone (batched decode + views) on batches read ahead;
* gpu_loader: DataLoader with --workers processes reading bytes, feeding the device half.

    python benchmarks/bench_loader.py --device cuda --json loader.json
    python benchmarks/bench_loader.py --device cpu --images 256 --workers 2   # the batched path on CPU tensors
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from infomin.pretrain.data import ResumableSampler, RobustImageFolder, WorkerSeeder, build_loader
from infomin.views import build_multiview_transform
from infomin.views.device import DeviceViews, EncodedViews
from infomin.device import cpu_name



def write_images(root: str, count: int, seed: int = 0, size=(500, 375)) -> str:
    """``count`` textured JPEGs, sizes spread around ``size`` (ImageNet's average), quality 90."""
    import skimage.data

    rng = np.random.default_rng(seed)
    base = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((800, 800)))
    folder = os.path.join(root, "train", "class_00")
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        w = int(size[0] * rng.uniform(0.8, 1.2))
        h = int(size[1] * rng.uniform(0.8, 1.2))
        top, left = rng.integers(0, 800 - h), rng.integers(0, 800 - w)
        arr = base[top:top + h, left:left + w].astype(np.float32) + rng.normal(0, 6, (h, w, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i:05d}.JPEG"), quality=90)
    return root


def _loader(root, transform, batch, workers):
    ds = RobustImageFolder(root, "train", transform, seed=0)
    sampler = ResumableSampler(len(ds), shuffle=False, pad=False)
    return build_loader(ds, batch, sampler, workers, WorkerSeeder(0, 0), drop_last=False)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(loader, step, device, warmup: int = 1) -> float:
    """Pairs per second over the loader's batches after ``warmup`` batches."""
    pairs, t0 = 0, None
    for i, batch in enumerate(loader):
        out = step(batch)
        if i + 1 == warmup:
            _sync(device)
            t0 = time.perf_counter()
        elif i + 1 > warmup:
            pairs += out["view1"].shape[0]
    _sync(device)
    return pairs / (time.perf_counter() - t0) if t0 and pairs else float("nan")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the batched views run (cpu: the same code on CPU tensors)")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="DataLoader workers (default: all cores)")
    p.add_argument("--images", type=int, default=512, help="generated JPEGs (about 500 x 375)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--tiny", action="store_true", help="a seconds-long run (tests): 12 images, batch 4, 64 px")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; use --device cpu to time the batched path on CPU tensors")
    size, jig = 224, True
    if args.tiny:
        args.images, args.batch, args.workers, size = 12, 4, min(args.workers, 1), 64
    device = torch.device(args.device)
    views = build_multiview_transform("D", image_size=size, jigsaw=jig) if not args.tiny else \
        build_multiview_transform("D", image_size=size, jigsaw=__import__("infomin.views", fromlist=["J"]).JigsawSpec(
            crop_size=72, tile=18))
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(),
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    print(f"machine: {machine['cpu']} ({machine['cores']} cores)" + (f", GPU {machine['gpu']}" if machine["gpu"] else ""))
    print(f"policy D + jigsaw, {args.images} JPEGs, batch {args.batch}, {args.workers} workers, views on {device}")
    torch.set_num_threads(1 if device.type == "cuda" else max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        root = write_images(tmp, args.images if not args.tiny else args.images, size=(500, 375) if not args.tiny else (96, 72))
        cpu = rate(_loader(root, views, args.batch, args.workers), lambda b: b, torch.device("cpu"))
        print(f"cpu_loader:   {cpu:8.1f} view pairs/s (baseline)")
        dev = DeviceViews(views, device)
        enc = EncodedViews(views)
        batches = list(_loader(root, enc, args.batch, args.workers))
        dv = rate(batches, dev, device)
        print(f"device_views: {dv:8.1f} view pairs/s ({dv / cpu:.2f}x the CPU loader; decode + views on {device} only)")
        gl = rate(_loader(root, enc, args.batch, args.workers), dev, device)
        print(f"gpu_loader:   {gl:8.1f} view pairs/s ({gl / cpu:.2f}x the CPU loader; workers read bytes, {device} "
              "decodes and augments)")
    out = {"machine": machine, "device": args.device, "workers": args.workers, "images": args.images,
           "batch": args.batch, "image_size": size, "policy": "D+jigsaw",
           "cpu_loader_pairs_per_s": cpu, "device_views_pairs_per_s": dv, "gpu_loader_pairs_per_s": gl,
           "device_views_vs_cpu_loader": dv / cpu, "gpu_loader_vs_cpu_loader": gl / cpu}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
