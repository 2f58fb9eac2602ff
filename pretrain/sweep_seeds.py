"""A view sweep repeated over seeds: accuracy and I_NCE per knob value as mean ± std.

Why: one seed of a short sweep carries several points of probe noise, as large as the effect the
sweep looks for (the reverse-U of accuracy against I_NCE). `infomin-view-sweep --seeds 0,1,2`
runs the whole sweep once per seed in `OUT/seed-N/` (data generated from that seed when no
`--data` is given, pretraining `SEED` = N, each seed resumable on its own) and writes
`OUT/sweep.csv` (one row per value: n, mean and sample std of accuracy and I_NCE, the per-seed
accuracies) and `OUT/sweep.png` (accuracy against I_NCE with error bars in both directions, and
accuracy against the knob value).
"""
from __future__ import annotations

import copy
import csv
import io
import statistics
from pathlib import Path

from infomin.atomic import atomic_write_path, atomic_write_text

__all__ = ["parse_seeds", "sweep_seeds", "aggregate_rows", "write_seed_outputs", "SEED_CSV_FIELDS"]

SEED_CSV_FIELDS = ("knob", "value", "n", "accuracy_mean", "accuracy_std", "i_nce_mean", "i_nce_std",
                   "pretrain_i_nce_mean", "pretrain_i_nce_std", "accuracies")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds must list distinct non-negative integers such as 0,1,2, got {text!r}")
    return seeds


def _mean_std(values):
    values = [float(v) for v in values if v is not None and v == v]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def aggregate_rows(per_seed: dict) -> list[dict]:
    """{seed: [row per value]} -> one row per value (in the first seed's order) with mean/std."""
    order = []
    for rows in per_seed.values():
        for r in rows:
            if r["value"] not in order:
                order.append(r["value"])
    out = []
    for value in order:
        rows = [r for seed in sorted(per_seed) for r in per_seed[seed] if r["value"] == value]
        acc, acc_sd = _mean_std(r.get("accuracy") for r in rows)
        mi, mi_sd = _mean_std(r.get("i_nce") for r in rows)
        pmi, pmi_sd = _mean_std(r.get("pretrain_i_nce") for r in rows)
        out.append({"knob": rows[0]["knob"], "value": value, "n": len(rows), "accuracy_mean": acc,
                    "accuracy_std": acc_sd, "i_nce_mean": mi, "i_nce_std": mi_sd, "pretrain_i_nce_mean": pmi,
                    "pretrain_i_nce_std": pmi_sd,
                    "accuracies": " ".join(f"{r['accuracy']:.2f}" for r in rows)})
    return out


def write_seed_outputs(rows: list[dict], out: Path, knob: str, seeds) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SEED_CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(Path(out) / "sweep.csv", buf.getvalue())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    xs, ys = [r["i_nce_mean"] for r in rows], [r["accuracy_mean"] for r in rows]
    xerr, yerr = [r["i_nce_std"] or 0.0 for r in rows], [r["accuracy_std"] or 0.0 for r in rows]
    ax.plot(xs, ys, "-", color="0.7", zorder=1)
    ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o", capsize=3, zorder=2)
    for r in rows:
        ax.annotate(f"{r['value']}", (r["i_nce_mean"], r["accuracy_mean"]), textcoords="offset points",
                    xytext=(5, 5))
    ax.margins(0.15)
    ax.set_xlabel("I_NCE between views (nats), mean ± std")
    ax.set_ylabel("linear-probe top-1 (%), mean ± std")
    ax.set_title(f"{knob}: accuracy vs I_NCE, seeds {','.join(map(str, seeds))}")
    vals = [float(r["value"]) for r in rows] if all(_is_number(r["value"]) for r in rows) else list(range(len(rows)))
    bx.errorbar(vals, ys, yerr=yerr, fmt="o-", capsize=3)
    bx.set_xlabel(knob)
    bx.set_ylabel("linear-probe top-1 (%)")
    bx.set_title("accuracy per knob value")
    fig.tight_layout()
    atomic_write_path(Path(out) / "sweep.png", lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def sweep_seeds(args, sweep) -> list[dict]:
    """Run `sweep` (view_sweep.sweep) once per seed of `args.seeds`; aggregate and plot."""
    seeds = parse_seeds(args.seeds)
    out = Path(args.output_dir)
    per_seed = {}
    for seed in seeds:
        a = copy.copy(args)
        a.seed, a.seeds, a.output_dir = seed, None, str(out / f"seed-{seed}")
        a.opts = [*args.opts, "SEED", str(seed)]
        print(f"== seed {seed} -> {a.output_dir}")
        per_seed[seed] = sweep(a)
    rows = aggregate_rows(per_seed)
    write_seed_outputs(rows, out, args.knob, seeds)
    return rows
