"""Sweep one view knob and plot linear accuracy against I_NCE (the paper's reverse-U, Fig. 5).

For each knob value:

* augmentation knobs (``crop_min``, ``jitter_strength``, ``blur_prob``, ``ra_magnitude``): brief
  pretraining with the engine (``run_pretraining``) on views with that value, its linear probe
  (``run_linear_eval``), and I_NCE between two views of the policy from ``infomin.mi`` (a fresh
  critic, the same budget and K for every value, held-out images = the val split);
* ``color_split`` (values are colour spaces, e.g. ``RGB,Lab,YDbDr``): views are channel 1 vs
  channels 2-3 of that space, which a one-encoder method cannot take, so a fresh two-stream
  contrastive encoder is trained on them, measured and linear-probed exactly as
  ``infomin-learn-views`` evaluates a raw split;
* ``patch_distance`` (values in pixels): views are two ``--patch-size`` patches of one image
  whose centres lie that far apart (Sec. 3.3 of the paper); the critic's encoder, trained
  contrastively on them, is the representation, linear-probed on whole images resized to the
  patch size.

Each finished point is written atomically to ``OUT/points/<knob>=<value>.json``; a rerun skips
finished points and resumes the engine from a point's own checkpoints. ``OUT/sweep.csv`` and
``OUT/sweep.png`` are rewritten after every point.

    infomin-view-sweep --config-file configs/views/sweep_crop_min_moco_R50_100ep.yaml \\
        --knob crop_min --values 0.08,0.2,0.4,0.6,0.8 --output-dir out/crop_sweep
"""
from __future__ import annotations

import csv
import io
import json
import os
import warnings
from pathlib import Path

import torch

from infomin import mi
from infomin.atomic import atomic_write_path, atomic_write_text
from infomin.datasets import builtin_imagefolder

__all__ = ["KNOBS", "ENGINE_KNOBS", "knobs", "engine_knobs", "parse_values", "sweep", "write_outputs", "check_config",
           "SweepSettingsError", "PatchPair"]

#: Knobs measured without the engine (views that one encoder cannot take, or whole-image patches).
OTHER_KNOBS = ("color_split", "patch_distance")


def engine_knobs() -> dict[str, str]:
    """knob -> config key: every knob of the registered view stages (infomin.views.STAGES) that the
    pretraining config has as VIEWS.<KNOB>; their points pretrain with the engine."""
    from infomin.pretrain.config import get_cfg
    from infomin.views import STAGES

    views = get_cfg().VIEWS
    return {name: f"VIEWS.{name.upper()}" for name in STAGES.knobs() if name.upper() in views}


def knobs() -> tuple[str, ...]:
    return (*engine_knobs(), *OTHER_KNOBS)


def __getattr__(name):  # KNOBS / ENGINE_KNOBS, read from the stage registry when asked
    if name == "KNOBS":
        return knobs()
    if name == "ENGINE_KNOBS":
        return engine_knobs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_values(knob: str, text: str) -> list:
    choices = knobs()
    if knob not in choices:
        raise ValueError(f"unknown knob {knob!r}: choose one of {', '.join(choices)}")
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items:
        raise ValueError("--values needs at least one comma-separated value")
    if knob == "color_split":
        return items
    try:
        return [float(v) for v in items]
    except ValueError:
        raise ValueError(f"--values for {knob} must be numbers, got {text!r}") from None


def _point_name(knob, value) -> str:
    return f"{knob}={value}"


def _builtin_variant(args) -> str:
    """Which VIEW_DATA set a sweep without --data generates (`--builtin`, default textured)."""
    return getattr(args, "builtin", None) or "textured"


def _default_root(out: Path, seed: int, variant: str = "textured") -> str:
    folder = "builtin_data" if variant == "textured" else f"builtin_data_{variant}"
    return builtin_imagefolder(out / folder, seed, variant)


def _engine_point(args, knob, value, point_dir: Path, root: str) -> dict:
    from torchvision.datasets import ImageFolder

    from infomin.pretrain import build
    from infomin.pretrain.config import load_cfg
    from infomin.pretrain.engine import run_pretraining
    from infomin.pretrain.linear_eval import run_linear_eval

    opts = list(args.opts) + [engine_knobs()[knob], str(value), "OUTPUT_DIR", str(point_dir),
                              "DATA.ROOT", root]
    cfg = load_cfg(args.config_file, opts)
    ckpt = run_pretraining(cfg, resume="auto")
    linear = run_linear_eval(cfg, ckpt, resume="auto")
    if not _is_main():  # under torchrun only rank 0 estimates and writes; the others go on
        return {}
    mi_cfg = cfg.clone()
    mi_cfg.defrost()
    mi_cfg.VIEWS.JIGSAW = False  # the I_NCE is between the two views; tiles are not needed
    pair_tf = build.build_train_transform(mi_cfg)
    split = lambda name: ImageFolder(os.path.join(root, name))
    train, held = mi.image_pair_loaders(split(cfg.DATA.TRAIN_SPLIT), pair_tf, batch_size=args.mi_batch,
                                        heldout_dataset=split(cfg.DATA.VAL_SPLIT), seed=cfg.SEED,
                                        num_workers=cfg.DATA.NUM_WORKERS)
    return {"accuracy": float(linear["top1"]), **_estimate(args, train, held, 3, cfg.SEED),
            **_pretrain_i_nce(cfg)}


def _is_main() -> bool:
    """Rank 0 of a torchrun launch (RANK is set before the engine initialises the process group)."""
    return int(os.environ.get("RANK", "0")) == 0


def _pretrain_i_nce(cfg) -> dict:
    """log K - L_NCE from the pretraining run's own last-epoch loss (what the paper plots), where
    K = negatives + 1 of the method's queue or memory bank, or of its logged in-batch negatives;
    empty if the run logged no loss."""
    import math

    from infomin.pretrain import build

    path = Path(cfg.OUTPUT_DIR) / "metrics.jsonl"
    if not path.is_file():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records = [r for r in records if "loss_contrast" in r and "epoch" in r]
    if not records:
        return {}
    # in-batch methods (SimCLR) log their negatives per anchor; queue and bank methods have K fixed
    negatives = records[-1].get("negatives") or cfg.MODEL.QUEUE_SIZE or \
        build.method_defaults(cfg.MODEL.METHOD).get("queue_size")
    if not negatives:
        return {}
    last = max(r["epoch"] for r in records)
    losses = [r["loss_contrast"] for r in records if r["epoch"] == last]
    return {"pretrain_i_nce": math.log(negatives + 1) - sum(losses) / len(losses),
            "pretrain_k": int(negatives) + 1}


def _estimate(args, train, held, in_channels, seed, keep=None) -> dict:
    torch.manual_seed(seed)
    critic = mi.image_critic(in_channels, arch=args.mi_arch, width=args.mi_width,
                             temperature=args.mi_temperature)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", mi.MICeilingWarning)
        est = mi.estimate_mi(train, held, critic, device=args.device,
                             budget=mi.MIBudget(steps=args.mi_steps, lr=args.mi_lr,
                                                eval_batches=args.mi_eval_batches, seed=seed))
    for w in caught:
        print(f"warning: {w.message}")
    if keep is not None:
        keep.append(critic)
    return {"i_nce": est.value, "i_nce_std": est.std, "k": est.k, "log_k": est.log_k,
            "near_ceiling": est.near_ceiling, "critic_steps": args.mi_steps}


def _color_point(args, space, point_dir: Path, root: str) -> dict:
    from infomin import viewlearn as lv

    cfg = lv.load_cfg(args.color_config or None, list(args.opts) + [
        "DATA.ROOT", root, "DATA.FORMAT", "imagefolder", "DATA.COLOR_SPACE", space,
        "OUTPUT_DIR", str(point_dir), "EVAL.STEPS", str(args.mi_steps), "EVAL.ARCH", args.mi_arch,
        "EVAL.WIDTH", str(args.mi_width), "EVAL.TEMPERATURE", str(args.mi_temperature),
        "EVAL.LR", str(args.mi_lr), "EVAL.EVAL_BATCHES", str(args.mi_eval_batches),
        "EVAL.BATCH_SIZE", str(args.mi_batch), "DEVICE", args.device])
    data = lv.build_data(cfg)
    standardize = lv.Standardize.measure(data.unlabeled, cfg.DATA.STAT_IMAGES, cfg.SEED)
    r = lv.evaluate_views(None, standardize.to(args.device), data, cfg, args.device)
    return {**r, "critic_steps": args.mi_steps}


def check_config(args) -> None:
    """Load the config a point will use (unknown keys, bad values, missing files fail here,
    before any point runs)."""
    from infomin import viewlearn
    from infomin.pretrain.config import load_cfg

    if args.knob in engine_knobs():
        load_cfg(args.config_file, list(args.opts))
    elif args.knob == "color_split":
        viewlearn.load_cfg(args.color_config or None, list(args.opts))


def _settings(args) -> dict:
    """What a finished point depends on besides its value; a resumed sweep must match it."""
    keep = ("config_file", "color_config", "data", "seed", "patch_size", "patch_image_size", "mi_steps", "mi_batch", "mi_lr", "mi_arch",
            "mi_width", "mi_temperature", "mi_eval_batches")
    settings = {**{k: getattr(args, k) for k in keep}, "opts": list(args.opts)}
    variant = _builtin_variant(args)
    if variant != "textured":  # absent from sweeps made before --builtin existed
        settings["builtin"] = variant
    return settings


class PatchPair:
    """Two ``patch_size`` crops of one image whose centres are ``distance`` px apart, in a random
    direction (after an optional resize of the shorter side to ``image_size``); normalised."""

    def __init__(self, patch_size: int, distance: float, image_size: int = 0):
        import torchvision.transforms as T

        from infomin.views import build_eval_transform

        if patch_size < 1 or distance < 0:
            raise ValueError(f"patch_size must be >= 1 and distance >= 0, got {patch_size}, {distance}")
        self.p, self.d = int(patch_size), float(distance)
        self.resize = T.Resize(image_size) if image_size else None
        self.finish = build_eval_transform(image_size=self.p, resize=self.p)  # a no-op resize + normalise

    def __call__(self, img):
        import math
        import random

        img = img.convert("RGB")
        if self.resize is not None:
            img = self.resize(img)
        w, h, p = img.width, img.height, self.p
        if p > min(w, h) or self.d > math.hypot(w - p, h - p):
            raise ValueError(f"patches of {p} px {self.d:g} px apart do not fit a {w}x{h} image; lower "
                             "--values/--patch-size or raise --patch-image-size")
        for _ in range(100):
            angle = random.uniform(0, 2 * math.pi)
            dx, dy = round(self.d * math.cos(angle)), round(self.d * math.sin(angle))
            if abs(dx) <= w - p and abs(dy) <= h - p:
                break
        else:  # only the diagonal fits: use it
            dx, dy = (w - p) * random.choice((-1, 1)), (h - p) * random.choice((-1, 1))
        x = random.randint(max(0, -dx), min(w - p, w - p - dx))
        y = random.randint(max(0, -dy), min(h - p, h - p - dy))
        crop = lambda x0, y0: self.finish(img.crop((x0, y0, x0 + p, y0 + p)))
        return {"view1": crop(x, y), "view2": crop(x + dx, y + dy)}


def _patch_point(args, distance, root: str) -> dict:
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    from infomin.viewlearn import linear_probe
    from infomin.views import build_eval_transform

    split = lambda name, tf=None: ImageFolder(os.path.join(root, name), transform=tf)
    pairs = PatchPair(args.patch_size, distance, args.patch_image_size)
    train, held = mi.image_pair_loaders(split("train"), pairs, batch_size=args.mi_batch,
                                        heldout_dataset=split("val"), seed=args.seed)
    critics = []
    result = _estimate(args, train, held, 3, args.seed, keep=critics)
    encoder = critics[0].encoder1.eval()
    whole = build_eval_transform(image_size=args.patch_size, resize=args.patch_size)

    @torch.no_grad()
    def features(name):
        xs, ys = [], []
        for x, y in DataLoader(split(name, whole), batch_size=128):
            xs.append(encoder(x.to(args.device)).cpu())
            ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    return {**result, "accuracy": linear_probe(features("train"), features("val"), seed=args.seed)}


class SweepSettingsError(ValueError):
    """The output folder belongs to a sweep with other settings."""


def _claim(out: Path, settings: dict) -> None:
    """Refuse to resume into a folder made with other settings: its points and the engine's
    checkpoints inside it would silently mix two experiments."""
    path = out / "sweep_settings.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != settings:
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            raise SweepSettingsError(f"{out} holds a sweep made with other settings (differs in {changed}); "
                             "use another --output-dir, or delete it to start over")
    else:
        atomic_write_text(path, json.dumps(settings, indent=1))


def sweep(args) -> list[dict]:
    """Run (or resume) every point; returns the rows in value order."""
    out = Path(args.output_dir)
    values = parse_values(args.knob, args.values)
    root = args.data or _default_root(out, args.seed, _builtin_variant(args))
    settings = _settings(args)
    main_process = _is_main()
    if main_process:
        _claim(out, settings)
    rows = []
    for value in values:
        name = _point_name(args.knob, value)
        done = out / "points" / f"{name}.json"
        if done.is_file():
            row = json.loads(done.read_text())
            if row.get("settings") != settings:
                raise SweepSettingsError(
                    f"{done} was made with other settings ({row.get('settings')}), not {settings}; "
                    "use another --output-dir, or delete that file to recompute the point")
            print(f"[{name}] done earlier: I_NCE {row['i_nce']:.3f}, top-1 {row['accuracy']:.2f}%")
        else:
            print(f"[{name}] pretraining, linear probe and I_NCE ...")
            point_dir = out / name
            if args.knob in engine_knobs():  # every rank trains; rank 0 also measures
                result = _engine_point(args, args.knob, value, point_dir, root)
            elif not main_process:
                continue
            elif args.knob == "color_split":
                result = _color_point(args, value, point_dir, root)
            else:
                result = _patch_point(args, value, root)
            if not main_process:
                continue
            row = {"knob": args.knob, "value": value, **result, "settings": settings}
            atomic_write_text(done, json.dumps(row, indent=1))
        rows.append(row)
        write_outputs(rows, out, args.knob)
    return rows


CSV_FIELDS = ("knob", "value", "i_nce", "i_nce_std", "k", "log_k", "near_ceiling", "accuracy", "critic_steps",
              "pretrain_i_nce", "pretrain_k")


def write_outputs(rows: list[dict], out: Path, knob: str) -> None:
    """sweep.csv and sweep.png (accuracy vs I_NCE, points labelled with the knob value)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "sweep.csv", buf.getvalue())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    xs, ys = [r["i_nce"] for r in rows], [r["accuracy"] for r in rows]
    ax.plot(xs, ys, "-", color="0.7", zorder=1)
    ax.errorbar(xs, ys, xerr=[r["i_nce_std"] for r in rows], fmt="o", capsize=3, zorder=2)
    for r in rows:
        ax.annotate(f"{r['value']}", (r["i_nce"], r["accuracy"]), textcoords="offset points", xytext=(5, 5))
    ax.margins(0.15)
    k = rows[0].get("k")
    ax.set_xlabel(f"I_NCE between views (nats, K={k})" if k else "I_NCE between views (nats)")
    ax.set_ylabel("linear-probe top-1 (%)")
    ax.set_title(f"view sweep over {knob}")
    fig.tight_layout()
    atomic_write_path(out / "sweep.png", lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
