"""`infomin-estimate-mi` / `tools/estimate_mi.py`: I_NCE between the two views of one or more
augmentation policies (`infomin.mi`), on an ImageFolder or the built-in data.

    infomin-estimate-mi --policy A,B,D --steps 300 --output-dir output/estimate_mi

A rerun into an output dir that holds estimates.json is refused (pass --overwrite to replace it;
the old files are moved into replaced-<time>/).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from infomin import mi
from infomin.atomic import atomic_write_path, atomic_write_text
from infomin.cli.common import UsageError, refuse_or_move_aside, run_cli
from infomin.datasets import builtin_imagefolder
from infomin.device import resolve_device
from infomin.workers import cap_workers

__all__ = ["main", "add_view_knob_options"]
PROG = "infomin-estimate-mi"
OUTPUTS = ("estimates.json", "estimates.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="", help="ImageFolder root with train/ and val/ (default: built-in data)")
    p.add_argument("--policy", default="D", help="comma-separated view policies (infomin.views.POLICIES)")
    p.add_argument("--image-size", type=int, default=64)
    view_knobs = add_view_knob_options(p)
    p.add_argument("--color-space", default="RGB")
    p.add_argument("--bound", choices=mi.BOUNDS, default="nce")
    p.add_argument("--queue-size", type=int, default=0, help="0 = in-batch negatives (K = batch size)")
    p.add_argument("--steps", type=int, default=300, help="critic training steps (same for every policy)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--eval-batches", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--output-dir", default="output/estimate_mi")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the estimates of an earlier run in --output-dir (moved into replaced-<time>/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    return run_cli(PROG, lambda: _run(args, view_knobs))


def _view_pairs(args, policies, view_knobs) -> dict:
    """Every policy's view pair, built before any work: a knob a policy lacks is refused up front."""
    from infomin.views import POLICIES, build_multiview_transform

    unknown = [x for x in policies if x not in POLICIES]
    if unknown or not policies:
        raise UsageError(f"unknown policy {unknown or args.policy!r}: choose from {sorted(POLICIES)}")
    knobs = {name: getattr(args, name) for name in view_knobs if getattr(args, name) is not None}
    pairs = {}
    for policy in policies:
        try:
            pairs[policy] = build_multiview_transform(policy, image_size=args.image_size,
                                                      color_space=args.color_space, **knobs)
        except ValueError as err:
            flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in knobs.items())
            raise UsageError(f"--policy {policy}{' with ' + flags if flags else ''}: {err}") from None
    return pairs


def _run(args, view_knobs) -> int:
    from torchvision.datasets import ImageFolder

    policies = [x.strip() for x in args.policy.split(",") if x.strip()]
    device = resolve_device(args.device, "--device")
    pairs = _view_pairs(args, policies, view_knobs)
    out = Path(args.output_dir)
    refuse_or_move_aside(str(out), OUTPUTS, overwrite=args.overwrite, what="the estimates of an earlier run",
                         advice="")
    root = args.data or builtin_imagefolder(out / "builtin_data", args.seed)
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(root, split)):
            raise UsageError(f"{root} has no {split}/ folder: --data must be an ImageFolder root with train/ and val/")
    budget = mi.MIBudget(steps=args.steps, lr=args.lr, eval_batches=args.eval_batches, seed=args.seed)
    results = {}
    for policy in policies:
        train, held = mi.image_pair_loaders(ImageFolder(os.path.join(root, "train")), pairs[policy],
                                            heldout_dataset=ImageFolder(os.path.join(root, "val")),
                                            batch_size=args.batch_size, num_workers=cap_workers(args.workers, "--workers"),
                                            seed=args.seed)
        torch.manual_seed(args.seed)
        critic = mi.image_critic(3, arch=args.arch, width=args.width, temperature=args.temperature)
        with _progress(f"policy {policy}", args.steps, disable=args.no_progress) as log:
            est = mi.estimate_mi(train, held, critic, bound=args.bound, budget=budget,
                                 queue_size=args.queue_size, device=device, log=log)
        print(f"policy {policy}: {est.summary()}")
        results[policy] = est.as_dict()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "estimates.json", json.dumps({"args": vars(args), "estimates": results}, indent=1))
    _plot_estimates(out / "estimates.png", results, args)
    print(f"wrote {out / 'estimates.json'} and {out / 'estimates.png'}")
    return 0


class _progress:
    """A tqdm bar over the critic's training steps (on stderr; the results go to stdout)."""

    def __init__(self, desc: str, total: int, disable: bool):
        self.desc, self.total, self.disable, self.bar = desc, total, disable, None

    def __enter__(self):
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, desc=self.desc, unit="step", disable=self.disable, leave=False)

        def log(step: int, value: float):
            self.bar.update(1)
            if step % 10 == 0 or step == self.total:
                self.bar.set_postfix(bound=f"{value:.3f}")

        return log

    def __exit__(self, *exc):
        self.bar.close()


def add_view_knob_options(parser) -> tuple[str, ...]:
    """One ``--knob-name`` option (default None = the policy's value) per knob of the registered
    view stages (infomin.views.STAGES: --crop-min, --jitter-strength, --blur-prob, --ra-magnitude);
    returns the knob names."""
    from infomin.views import STAGES

    knobs = STAGES.knobs()
    for name, knob in knobs.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=knob.type, default=None, help=knob.help)
    return tuple(knobs)


def _plot_estimates(path, results: dict, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 3.5))
    ax.bar(names, [results[n]["value"] for n in names], yerr=[results[n]["std"] for n in names], capsize=4)
    log_k = results[names[0]]["log_k"]
    if log_k:
        ax.axhline(log_k, ls="--", color="k", lw=1, label=f"log K (K={results[names[0]]['k']})")
        ax.axhline(mi.CEILING_FRACTION * log_k, ls=":", color="r", lw=1, label="90% of log K")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("view policy")
    ax.set_ylabel(f"{args.bound.upper()} bound (nats)")
    ax.set_title(f"I between two views, held-out, critic {args.arch} x{args.width:g}, {args.steps} steps",
                 fontsize=9)
    fig.tight_layout()
    atomic_write_path(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
