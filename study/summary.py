"""The several-seed report: each number as mean +- std over seeds, a verdict that respects the spread.

Why: one seed of the study can put InfoMin ahead of random init and the next seed behind it (the
spread between seeds is as large as the effect at small scale). So a margin only counts where the
mean margin exceeds the seed spread: the larger of the two inits' sample standard deviations
(ddof 1) over the seeds. Everything here reads the per-seed stage results and writes
`OUTPUT/report.md` and `OUTPUT/ap.png`.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from infomin.atomic import atomic_write_text

from .report import INIT_LABELS, _get, _save_png, paper_table, run_table

__all__ = ["Stat", "aggregate", "compare", "spread_verdict", "summary_table", "plot_ap_spread",
           "write_summary", "COLUMNS", "VERDICT_METRICS"]

INITS = ("infomin", "supervised", "random")
# column name -> (task, kind, metric); kNN top-1 is read from the pretraining stage
COLUMNS = {
    "VOC AP": ("voc", "bbox", "AP"), "VOC AP50": ("voc", "bbox", "AP50"), "VOC AP75": ("voc", "bbox", "AP75"),
    "COCO box AP": ("coco", "bbox", "AP"), "box AP50": ("coco", "bbox", "AP50"),
    "box AP75": ("coco", "bbox", "AP75"),
    "mask AP": ("coco", "segm", "AP"), "mask AP50": ("coco", "segm", "AP50"), "mask AP75": ("coco", "segm", "AP75"),
}
VERDICT_METRICS = (("VOC box AP", "VOC AP"), ("COCO box AP", "COCO box AP"), ("COCO mask AP", "mask AP"))


@dataclass(frozen=True)
class Stat:
    """One number over seeds: the values that exist (missing/nan left out), mean and sample std."""

    values: tuple

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self):
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self):
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    def text(self) -> str:
        if not self.values:
            return "-"
        return f"{self.mean:.1f}" if self.std is None else f"{self.mean:.1f} ± {self.std:.1f}"


def _value(results: dict, init: str, column: str):
    if column == "kNN top-1":
        v = results.get(f"pretrain-{init}", {}).get("knn_top1")
    else:
        task, kind, metric = COLUMNS[column]
        v = _get(results, f"{task}-{init}", kind, metric)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def aggregate(per_seed: dict) -> dict:
    """{column: {init: Stat}} over the seeds' stage results ({seed: results})."""
    out = {}
    for column in (*COLUMNS, "kNN top-1"):
        out[column] = {}
        for init in INITS:
            values = [_value(per_seed[s], init, column) for s in sorted(per_seed)]
            out[column][init] = Stat(tuple(v for v in values if v is not None))
    return out


def compare(a: Stat, b: Stat) -> tuple[str, float | None, float | None]:
    """('ahead' | 'behind' | 'within' | 'no spread' | 'n/a', margin a-b, spread).

    Ahead/behind only where |mean margin| exceeds the spread, the larger sample std of the two."""
    if not a.values or not b.values:
        return "n/a", None, None
    margin = a.mean - b.mean
    if a.std is None or b.std is None:
        return "no spread", margin, None
    spread = max(a.std, b.std)
    if margin > spread:
        return "ahead", margin, spread
    if margin < -spread:
        return "behind", margin, spread
    return "within", margin, spread


_WORDS = {"ahead": "ahead of", "behind": "behind", "within": "within the seed spread of"}
_OTHER = {"random": "random init", "supervised": "supervised init"}


def spread_verdict(agg: dict, seeds) -> str:
    """Per metric, InfoMin against random and against supervised init, and a count of real wins."""
    parts, wins = [], {"random": 0, "supervised": 0}
    for name, column in VERDICT_METRICS:
        infomin = agg[column]["infomin"]
        for other in ("random", "supervised"):
            word, margin, spread = compare(infomin, agg[column][other])
            if word == "n/a":
                parts.append(f"{name} vs {_OTHER[other]}: not available")
                continue
            if word == "no spread":
                parts.append(f"{name}: InfoMin {infomin.text()} vs {_OTHER[other]} "
                             f"{agg[column][other].text()} ({margin:+.1f}; no spread measured)")
                continue
            wins[other] += word == "ahead"
            parts.append(f"{name}: InfoMin {infomin.text()} is {_WORDS[word]} {_OTHER[other]} "
                         f"{agg[column][other].text()} (margin {margin:+.1f}, spread {spread:.1f})")
    seeds_text = ", ".join(str(s) for s in seeds)
    head = (f"Over seeds {seeds_text} (mean ± sample std), InfoMin init is ahead by more than the seed "
            f"spread on {wins['random']} of {len(VERDICT_METRICS)} metrics against random init and on "
            f"{wins['supervised']} of {len(VERDICT_METRICS)} against supervised init.")
    return head + " " + "; ".join(parts) + "."


def summary_table(agg: dict) -> str:
    head = "| init | " + " | ".join((*COLUMNS, "kNN top-1")) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for init in INITS:
        lines.append("| " + " | ".join([INIT_LABELS[init], *(agg[c][init].text() for c in (*COLUMNS, "kNN top-1"))])
                     + " |")
    return "\n".join(lines)


def plot_ap_spread(agg: dict, per_seed: dict, path: Path) -> None:
    """AP per init: bars at the mean, error bars of one sample std, one dot per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [("VOC box AP", "VOC AP"), ("COCO box AP", "COCO box AP"), ("COCO mask AP", "mask AP")]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(groups))
    for k, init in enumerate(INITS):
        stats = [agg[column][init] for _, column in groups]
        means = [s.mean if s.values else 0.0 for s in stats]
        errs = [s.std or 0.0 for s in stats]
        pos = x + (k - 1) * 0.27
        ax.bar(pos, means, 0.27, yerr=errs, capsize=4, label=INIT_LABELS[init], alpha=0.85)
        for p, s, m, e in zip(pos, stats, means, errs):
            ax.plot([p] * s.n, s.values, "k.", markersize=4, zorder=3)
            top = max([m + e, *s.values]) if s.values else 0.0
            ax.annotate(s.text(), (p, top), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    ax.set_xticks(x, [g[0] for g in groups])
    ax.set(ylabel="AP (COCO-style, 0.5:0.95)",
           title=f"Detection AP per initialisation: mean ± std over {len(per_seed)} seeds (dots: seeds)")
    ax.margins(y=0.12)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save_png(fig, path)
    plt.close(fig)


def write_summary(output, per_seed: dict, paper: dict, *, scale) -> dict:
    """OUTPUT/report.md (mean ± std table, verdict, each seed's table, published rows) and ap.png."""
    output = Path(output)
    seeds = sorted(per_seed)
    agg = aggregate(per_seed)
    ap = output / "ap.png"
    plot_ap_spread(agg, per_seed, ap)
    table = summary_table(agg)
    verdict = spread_verdict(agg, seeds)
    lines = [
        "# InfoMin study report",
        "",
        f"Built-in data, ResNet-18 encoders, scale {scale.name} ({scale.about}), seeds "
        f"{', '.join(map(str, seeds))}: each seed regenerates the data and reruns every stage "
        "(`seed-N/`, with its own report and curves). Cells are mean ± sample std (ddof 1) over the "
        "seeds. A margin counts only where the mean margin exceeds the spread, the larger of the two "
        "inits' std. Configs: " + ", ".join(sorted({*scale.pretrain.values(), *scale.detection.values()}))
        + ". VOC AP: Detectron2's PascalVOCDetectionEvaluator (mean over IoU 0.50:0.95); COCO AP: "
        "Detectron2's COCOEvaluator; kNN top-1: the pretraining engine's monitor on the val split.",
        "",
        "## Mean ± std over seeds",
        "",
        table,
        "",
        verdict,
        "",
        "![AP per init](ap.png)",
        "",
        "## Each seed",
        "",
    ]
    for s in seeds:
        lines += [f"Seed {s} (`seed-{s}/report.md`, curves in `seed-{s}/curves.png`):", "",
                  run_table(per_seed[s]), ""]
    lines += ["## Published numbers, full-scale protocol", "", paper["title"] + ".", "", paper_table(paper), "",
              "The study's numbers are not comparable in size with these (small encoder, synthetic data, "
              "minutes of training); what carries over is the comparison between initialisations.", ""]
    path = output / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return {"markdown": str(path), "ap": str(ap), "table": table, "verdict": verdict,
            "seeds": seeds, "scale": scale.name}
