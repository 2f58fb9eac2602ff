"""Which contrastive learner finds the built-in shapes on a CPU budget, and on which images?

An independent loop (not the engine): the ImageFolder images held in memory as one tensor, both
views made per batch with tensor ops (`roi_align` random-resized crops to 32 px, flips, brightness /
contrast / saturation jitter with a random channel permutation, 20 % grayscale), a quarter-width
torchvision ResNet-18 with a 2-layer MLP head, SGD with a one-cycle lr. Cheap views and a small
encoder buy about a thousand steps of batch 128 in 3 CPU minutes, so learners can be compared
where the engine's PIL views would take far longer. Learners (`--mode`):

* ``simclr``: in-batch negatives (2N - 2 per anchor), both views through the online encoder;
* ``simclr-onesided``: the same loss with the second view's embeddings detached (a positive and
  negatives that carry no gradient, as MoCo's keys and queue do);
* ``moco``: MoCo's momentum encoder and queue (``--queue``, ``--momentum``), one-directional, or
  both directions with ``--symmetric``;
* ``supervised``: cross-entropy on the labels through a linear classifier on the first view (the
  ceiling: what this encoder and budget can learn about the shapes at all).

Each reading (every quarter of the steps, and before training: the randomly initialised encoder)
gives the kNN top-1 (k 20, cosine) and a linear probe (full-batch logistic regression, L-BFGS,
standardised features) on the val split, chance 20 % on 5 classes; 400 val images, so one reading
carries about 2.5 points of binomial noise. The data: the study's ImageFolder size (4000 / 400)
from `infomin.datasets.write_imagefolder`, shapes in patterned fills (``--fill textured``, the
study's images) or flat colours (``--fill solid``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/contrastive_regime.py --mode simclr --fill solid
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/contrastive_regime.py --mode moco --fill solid

Prints one line per reading and, at the end, the last reading against the random-init floor.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import roi_align

from infomin.datasets import write_imagefolder
from infomin.models.encoders import build_encoder

SOURCE_PX, VIEW_PX, TEMPERATURE = 64, 32, 0.2


def load(root: Path, split: str):
    xs, ys = [], []
    for label, name in enumerate(sorted(os.listdir(root / split))):
        for path in sorted((root / split / name).glob("*.jpg")):
            xs.append(np.asarray(Image.open(path).convert("RGB").resize((SOURCE_PX, SOURCE_PX), Image.BILINEAR)))
            ys.append(label)
    return torch.tensor(np.stack(xs)).permute(0, 3, 1, 2).float() / 255, torch.tensor(ys)


def views(x: torch.Tensor, crop_min: float, jitter: float) -> torch.Tensor:
    """One random view per image: crop (area crop_min..1, ratio 3/4..4/3) to 32 px, flip, jitter."""
    n = x.shape[0]
    area = torch.empty(n).uniform_(crop_min, 1.0) * SOURCE_PX ** 2
    ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3)).exp()
    w, h = (area * ratio).sqrt().clamp(max=SOURCE_PX), (area / ratio).sqrt().clamp(max=SOURCE_PX)
    x0, y0 = torch.rand(n) * (SOURCE_PX - w), torch.rand(n) * (SOURCE_PX - h)
    boxes = torch.stack([torch.arange(n).float(), x0, y0, x0 + w, y0 + h], 1)
    v = roi_align(x, boxes, (VIEW_PX, VIEW_PX), 1.0, 2, aligned=True)
    v = torch.where((torch.rand(n) < 0.5)[:, None, None, None], v.flip(3), v)
    if jitter > 0:
        factor = lambda: 1 + (torch.rand(n, 1, 1, 1) * 2 - 1) * 0.8 * jitter  # noqa: E731
        j = v * factor()
        mean = j.mean((1, 2, 3), keepdim=True)
        j = (j - mean) * factor() + mean
        grey = j.mean(1, keepdim=True)
        j = (j - grey) * factor() + grey
        if jitter >= 0.5:  # a random channel order: a cheap, strong hue change
            perm = torch.stack([torch.randperm(3) for _ in range(n)])
            j = torch.gather(j, 1, perm[:, :, None, None].expand_as(j))
        v = torch.where((torch.rand(n) < 0.8)[:, None, None, None], j, v).clamp(0, 1)
        v = torch.where((torch.rand(n) < 0.2)[:, None, None, None], v.mean(1, keepdim=True).expand_as(v), v)
    return (v - 0.5) / 0.25


def readout(encoder, xtr, ytr, xva, yva) -> tuple[float, float]:
    """(kNN top-1, linear-probe top-1) in % of the frozen encoder on whole images at 32 px."""
    encoder.eval()
    with torch.no_grad():
        embed = lambda x: torch.cat([  # noqa: E731
            encoder((F.interpolate(x[i:i + 500], size=VIEW_PX, mode="bilinear", antialias=True) - 0.5) / 0.25)
            for i in range(0, len(x), 500)])
        ftr, fva = embed(xtr), embed(xva)
    encoder.train()
    sims = F.normalize(fva, dim=1) @ F.normalize(ftr, dim=1).T
    knn = (torch.mode(ytr[sims.topk(20, dim=1).indices], 1).values == yva).float().mean().item()
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fva = (ftr - mu) / sd, (fva - mu) / sd
    classes = int(ytr.max()) + 1
    weight = torch.zeros(ftr.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(ftr @ weight + bias, ytr) + 1e-3 * (weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    linear = ((fva @ weight + bias).argmax(1) == yva).float().mean().item()
    return 100 * knn, 100 * linear


def ntxent(z: torch.Tensor, batch: int) -> torch.Tensor:
    sims = z @ z.T / TEMPERATURE
    sims.fill_diagonal_(float("-inf"))
    return F.cross_entropy(sims, torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("simclr", "simclr-onesided", "moco", "supervised"), default="simclr")
    p.add_argument("--fill", choices=("textured", "solid"), default="solid")
    p.add_argument("--data", default="output/contrastive_regime", help="where the ImageFolder sets are written")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--crop-min", type=float, default=0.2)
    p.add_argument("--jitter", type=float, default=1.0)
    p.add_argument("--queue", type=int, default=1024)
    p.add_argument("--momentum", type=float, default=0.99)
    p.add_argument("--symmetric", action="store_true", help="moco: both directions (q1-k2 and q2-k1)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.mode == "moco" and args.queue % args.batch:
        p.error(f"--queue {args.queue} must be a multiple of --batch {args.batch}")
    root = Path(args.data) / f"{args.fill}-seed{args.seed}"
    if not (root / "train").is_dir():
        write_imagefolder(root, seed=args.seed, train_per_class=800, val_per_class=80, size=SOURCE_PX, fill=args.fill)
    torch.manual_seed(args.seed)
    xtr, ytr = load(root, "train")
    xva, yva = load(root, "val")
    encoder = build_encoder("resnet18", 0.25)
    dim = encoder.layer4[-1].conv2.out_channels
    if args.mode == "supervised":
        head = nn.Linear(dim, int(ytr.max()) + 1)
    else:
        head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 128))
    params = [*encoder.parameters(), *head.parameters()]
    lr = 0.06 * args.batch / 64
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=args.steps, pct_start=0.05)
    floor = readout(encoder, xtr, ytr, xva, yva)
    tag = f"{args.mode} fill={args.fill} crop_min={args.crop_min} jitter={args.jitter} seed={args.seed}"
    print(f"{tag} step 0 (random init): kNN {floor[0]:.1f} linear {floor[1]:.1f}", flush=True)
    if args.mode == "moco":
        key_encoder, key_head = copy.deepcopy(encoder), copy.deepcopy(head)
        for param in [*key_encoder.parameters(), *key_head.parameters()]:
            param.requires_grad_(False)
        queue, ptr = F.normalize(torch.randn(args.queue, 128), dim=1), 0
    b = args.batch
    start = time.process_time()
    last = floor
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(xtr), (b,))
        x = xtr[idx]
        v1, v2 = views(x, args.crop_min, args.jitter), views(x, args.crop_min, args.jitter)
        if args.mode == "supervised":
            loss = F.cross_entropy(head(encoder(v1)), ytr[idx])
        elif args.mode == "moco":
            with torch.no_grad():
                online = [*encoder.parameters(), *head.parameters()]
                for pk, pq in zip([*key_encoder.parameters(), *key_head.parameters()], online):
                    pk.mul_(args.momentum).add_(pq.detach(), alpha=1 - args.momentum)
            pairs = [(v1, v2), (v2, v1)] if args.symmetric else [(v1, v2)]
            loss, keys = 0.0, []
            for vq, vk in pairs:
                q = F.normalize(head(encoder(vq)), dim=1)
                with torch.no_grad():
                    k = F.normalize(key_head(key_encoder(vk)), dim=1)
                logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / TEMPERATURE
                loss = loss + F.cross_entropy(logits, torch.zeros(b, dtype=torch.long))
                keys.append(k)
        else:
            z = F.normalize(head(encoder(torch.cat([v1, v2]))), dim=1)
            if args.mode == "simclr-onesided":
                z = torch.cat([z[:b], z[b:].detach()])
            loss = ntxent(z, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if args.mode == "moco":
            for k in keys:
                queue[ptr:ptr + b] = k
                ptr = (ptr + b) % args.queue
        if step % max(args.steps // 4, 1) == 0:
            last = readout(encoder, xtr, ytr, xva, yva)
            print(f"{tag} step {step}: loss {loss.item():.3f} kNN {last[0]:.1f} linear {last[1]:.1f} "
                  f"({time.process_time() - start:.0f} CPU s)", flush=True)
    print(f"{tag}: after {args.steps} steps kNN {last[0]:.1f} (random init {floor[0]:.1f}, "
          f"x{last[0] / floor[0]:.2f}), linear {last[1]:.1f} (random init {floor[1]:.1f}, x{last[1] / floor[1]:.2f})")


if __name__ == "__main__":
    main()
