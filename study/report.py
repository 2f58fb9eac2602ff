"""The demo's report: AP tables (this run beside the published full-scale numbers) and PNG plots.

Kept apart from `run.py` so the orchestration reads as a list of stages; everything here only
reads stage results and metric files and writes `report.md`, `curves.png` and `ap.png`.
"""
from __future__ import annotations

import json
from pathlib import Path

from infomin.atomic import atomic_write_path, atomic_write_text

INIT_LABELS = {"infomin": "InfoMin", "supervised": "supervised", "random": "random init"}


def _fmt(value) -> str:
    return "-" if value is None or value != value else f"{value:.1f}"  # nan -> "-"


def _get(results: dict, stage: str, kind: str, key: str):
    return results.get(stage, {}).get("results", {}).get(kind, {}).get(key)


def run_table(results: dict, inits=("infomin", "supervised", "random")) -> str:
    head = ("| init | VOC AP | VOC AP50 | VOC AP75 | COCO box AP | box AP50 | box AP75 "
            "| mask AP | mask AP50 | mask AP75 | kNN top-1 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for init in inits:
        knn = results.get(f"pretrain-{init}", {}).get("knn_top1")
        cells = [INIT_LABELS[init]]
        cells += [_fmt(_get(results, f"voc-{init}", "bbox", k)) for k in ("AP", "AP50", "AP75")]
        cells += [_fmt(_get(results, f"coco-{init}", "bbox", k)) for k in ("AP", "AP50", "AP75")]
        cells += [_fmt(_get(results, f"coco-{init}", "segm", k)) for k in ("AP", "AP50", "AP75")]
        cells.append(_fmt(knn))  # the engine's kNN monitor is already a percentage
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_table(paper: dict) -> str:
    """The published rows, their sources, and why a missing figure is not quoted."""
    lines = ["| init | VOC AP | VOC AP50 | VOC AP75 | COCO box AP (1x) | COCO mask AP (1x) |",
             "|---|---|---|---|---|---|"]
    for init in ("infomin", "supervised", "random"):
        voc, coco = paper["voc"][init], paper["coco"][init]
        cells = [*(voc or ("n/q",) * 3), *(coco or ("n/q",) * 2)]
        label = {"infomin": "InfoMin Aug", "supervised": "supervised IN-1M",
                 "random": "random init"}[init]
        lines.append(f"| {label} | " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    lines += [f"* {task.upper()}: {source}." for task, source in paper.get("sources", {}).items()]
    lines += [f"* n/q (not quoted), {task.upper()} {INIT_LABELS[init]}: {why}."
              for (task, init), why in paper.get("not_quoted", {}).items()]
    return "\n".join(lines)


def verdict(results: dict) -> str:
    """One honest sentence per task: is InfoMin ahead of random init here?"""
    parts = []
    for task, kind, name in (("voc", "bbox", "VOC box AP"), ("coco", "bbox", "COCO box AP"),
                             ("coco", "segm", "COCO mask AP")):
        a, b = _get(results, f"{task}-infomin", kind, "AP"), _get(results, f"{task}-random", kind, "AP")
        if a is None or b is None or a != a or b != b:
            parts.append(f"{name}: not available")
            continue
        a, b = round(a, 1), round(b, 1)
        word = "ahead of" if a > b else ("level with" if a == b else "behind")
        parts.append(f"{name}: InfoMin {a:.1f} is {word} random init {b:.1f} ({a - b:+.1f})")
    return ("; ".join(parts) + ". One seed: the spread between seeds is not measured, so these "
            "margins are not evidence (run --seeds 0,1,2 for mean +- std).")


def _read_jsonl(path) -> list:
    out = []
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _series(records, key):
    points = {}
    for r in records:
        if key in r and "iteration" in r and isinstance(r[key], (int, float)):
            points[int(r["iteration"])] = float(r[key])  # a resumed run rewrites steps: keep the last
    xs = sorted(points)
    return xs, [points[x] for x in xs]


def _save_png(fig, path: Path) -> None:
    atomic_write_path(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def plot_curves(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for init in ("infomin", "supervised"):
        xs, ys = _series(_read_jsonl(results.get(f"pretrain-{init}", {}).get("metrics", "")), "loss")
        if xs:
            axes[0].plot(xs, ys, marker=".", label=INIT_LABELS[init])
    axes[0].set(title="pretraining loss", xlabel="iteration", ylabel="loss")
    for ax, task, title in ((axes[1], "voc", "Faster R-CNN on VOC layout"),
                            (axes[2], "coco", "Mask R-CNN on COCO layout")):
        for init in ("infomin", "supervised", "random"):
            metrics = results.get(f"{task}-{init}", {}).get("metrics", "")
            xs, ys = _series(_read_jsonl(metrics), "total_loss")
            if xs:
                ax.plot(xs, ys, marker="o", label=INIT_LABELS[init])
        ax.set(title=f"{title}: training loss", xlabel="iteration", ylabel="total loss")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    _save_png(fig, path)
    plt.close(fig)


def plot_ap(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [("VOC box AP", "voc", "bbox"), ("COCO box AP", "coco", "bbox"),
              ("COCO mask AP", "coco", "segm")]
    inits = ("infomin", "supervised", "random")
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(groups))
    for k, init in enumerate(inits):
        vals = [_get(results, f"{t}-{init}", kind, "AP") for _, t, kind in groups]
        vals = [0.0 if v is None or v != v else v for v in vals]
        bars = ax.bar(x + (k - 1) * 0.27, vals, 0.27, label=INIT_LABELS[init])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, [g[0] for g in groups])
    ax.set(ylabel="AP (COCO-style, 0.5:0.95)", title="Detection AP per initialisation")
    ax.legend()
    _save_png(fig, path)
    plt.close(fig)


def write_report(output: Path, results: dict, paper: dict, *, quick: bool, scale: str = "") -> dict:
    """Write report.md, curves.png and ap.png under `output`; return their paths and the table."""

    output = Path(output)
    curves, ap = output / "curves.png", output / "ap.png"
    plot_curves(results, curves)
    plot_ap(results, ap)
    table = run_table(results)
    scale = scale or ("--quick (a few iterations per stage: a smoke test, the numbers mean nothing)"
                      if quick else "full demo scale")
    text = "\n".join([
        "# InfoMin demo report",
        "",
        f"Built-in data, ResNet-18 encoders, {scale}. Configs: configs/study/. "
        "VOC AP is Detectron2's PascalVOCDetectionEvaluator (VOC2007 11-point metric, mean over "
        "IoU 0.50:0.95); COCO AP is Detectron2's COCOEvaluator (COCOeval statistics, computed by faster-coco-eval when Detectron2 has no compiled ops). "
        "kNN top-1 is the pretraining engine's monitor on the built-in ImageFolder val split.",
        "",
        "## This run",
        "",
        table,
        "",
        verdict(results),
        "",
        "## Published numbers, full-scale protocol",
        "",
        paper["title"] + ".",
        "",
        paper_table(paper),
        "",
        "The demo's numbers are not comparable in size with these (tiny encoder, synthetic data, "
        "minutes of training); what carries over is the comparison between initialisations.",
        "",
        "## Plots",
        "",
        "![training curves](curves.png)",
        "",
        "![AP per init](ap.png)",
        "",
    ])
    path = output / "report.md"
    atomic_write_text(path, text)
    return {"markdown": str(path), "curves": str(curves), "ap": str(ap), "table": table,
            "verdict": verdict(results)}
