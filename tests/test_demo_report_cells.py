"""The demo's report shows each stage's own numbers, and each fine-tuning started from its init.

Oracles: Detectron2's evaluation output of every detection stage (the ``copypaste`` lines its
`print_csv_format` writes to the stage log), pycocotools re-scoring the COCO predictions the
evaluator saved, fvcore's checkpointer log lines, and the converted ``.pkl`` backbone tensors.
The quick run is the session's shared one (``demo_quick_run`` in conftest.py).
"""
import contextlib
import io
import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

# The demo modules under test (one place, so a move of the package changes only these lines).
from infomin.study import run as demo
from infomin.study import report as demo_report

LABELS = {"infomin": "InfoMin", "supervised": "supervised", "random": "random init"}
# What each column of the run's table holds, written out independently of the report writer.
COLUMNS = {
    "VOC AP": ("voc", "bbox", "AP"), "VOC AP50": ("voc", "bbox", "AP50"),
    "VOC AP75": ("voc", "bbox", "AP75"),
    "COCO box AP": ("coco", "bbox", "AP"), "box AP50": ("coco", "bbox", "AP50"),
    "box AP75": ("coco", "bbox", "AP75"),
    "mask AP": ("coco", "segm", "AP"), "mask AP50": ("coco", "segm", "AP50"),
    "mask AP75": ("coco", "segm", "AP75"),
}
KINDS = {"voc": ("bbox",), "coco": ("bbox", "segm")}
METRICS = ("AP", "AP50", "AP75")


def _cell(value):
    """How a number is shown: one decimal, '-' when missing or nan (no detections)."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _run_table(markdown):
    """{row label: {column name: cell}} of the table under '## This run'."""
    section = markdown.split("## This run", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(COLUMNS) | {"init", "kNN top-1"} == set(header), header
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def _marker(out, stage):
    return json.loads((out / "stages" / f"{stage}.json").read_text())["result"]


def _copypaste(log_text):
    """Detectron2's own evaluation output in a stage log: {task: {metric: value}}, last run wins."""
    found, lines = {}, [line.split("copypaste: ", 1)[1] for line in log_text.splitlines()
                        if "copypaste: " in line]
    for i, line in enumerate(lines):
        if line.startswith("Task: "):
            names, values = lines[i + 1].split(","), lines[i + 2].split(",")
            found[line[len("Task: "):]] = {n: float(v) for n, v in zip(names, values)}
    return found


def _pycocotools_scores(gt_json, results_json, iou_type):
    """AP/AP50/AP75 (percent) of the predictions Detectron2's COCOEvaluator saved, re-scored."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    predictions = json.loads(Path(results_json).read_text())
    if not predictions:
        return {m: float("nan") for m in METRICS}
    if iou_type == "segm":  # as Detectron2 does: the mask's own box and area, not the box head's
        for p in predictions:
            p.pop("bbox", None)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        evaluator = COCOeval(gt, gt.loadRes(predictions), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {m: (float(stats[i] * 100) if stats[i] >= 0 else float("nan"))
            for i, m in enumerate(METRICS)}


def _close(a, b, tol):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


@pytest.fixture(scope="module")
def run(demo_quick_run):
    out, code, _ = demo_quick_run
    assert code == 0
    return out


@pytest.mark.slow
def test_stage_results_are_detectron2s_evaluation_output(run):
    """Each detection stage's marker holds what Detectron2's evaluator printed for that stage."""
    data_root = Path(_marker(run, "data")["root"])
    for task in demo.TASKS:
        for init in demo.INITS:
            stage = f"{task}-{init}"
            results = _marker(run, stage)["results"]
            printed = _copypaste((run / "detection" / stage / "log.txt").read_text())
            assert set(printed) == set(KINDS[task]), stage
            for kind in KINDS[task]:
                for metric in METRICS:
                    # copypaste shows 4 decimals of the same percentage
                    assert _close(results[kind][metric], printed[kind][metric], 5.1e-5), \
                        (stage, kind, metric, results[kind][metric], printed[kind][metric])
            if task == "coco":  # and pycocotools, run on the evaluator's saved predictions, agrees
                saved = list((run / "detection" / stage / "inference").glob("*/coco_instances_results.json"))
                assert len(saved) == 1, saved
                gt_json = data_root / "coco" / "annotations" / "instances_val2017.json"
                for kind in KINDS[task]:
                    rescored = _pycocotools_scores(gt_json, saved[0], kind)
                    for metric in METRICS:
                        assert _close(results[kind][metric], rescored[metric], 1e-6), \
                            (stage, kind, metric, results[kind][metric], rescored[metric])


@pytest.mark.slow
def test_every_report_cell_is_its_stages_result(run):
    report = (run / "report.md").read_text()
    rows = _run_table(report)
    assert set(rows) == set(LABELS.values())
    for init in demo.INITS:
        row = rows[LABELS[init]]
        for column, (task, kind, metric) in COLUMNS.items():
            value = _marker(run, f"{task}-{init}")["results"][kind][metric]
            assert row[column] == _cell(value), (init, column, row[column], value)
        # the pretraining engine's kNN monitor is already a percentage (100 * correct / total)
        knn = _marker(run, f"pretrain-{init}")["knn_top1"] if init != "random" else None
        assert row["kNN top-1"] == _cell(knn), (init, row)
    # the report stage's own record (what the terminal prints) is the same table and verdict
    record = _marker(run, "report")
    assert record["table"] in report and record["verdict"] in report
    assert _run_table("## This run\n" + record["table"]) == rows


def _distinct_results():
    """Stage results where every (init, task, kind, metric) has its own value: any mix-up shows."""
    results = {}
    for i, init in enumerate(demo.INITS):
        for j, task in enumerate(demo.TASKS):
            results[f"{task}-{init}"] = {"results": {
                kind: {m: 10.0 * i + 3.0 * j + 1.0 * k + 0.1 * n + 0.03 for n, m in enumerate(METRICS)}
                for k, kind in enumerate(KINDS[task])}}
    results["pretrain-infomin"] = {"knn_top1": 0.8}  # percent: a poor but real kNN monitor
    results["pretrain-supervised"] = {"knn_top1": 78.94}
    return results


def test_report_writer_puts_each_init_and_task_in_its_own_cell(tmp_path):
    results = _distinct_results()
    written = demo_report.write_report(tmp_path, results, demo.PAPER, quick=True)
    rows = _run_table((tmp_path / "report.md").read_text())
    cells = {}
    for init in demo.INITS:
        for column, (task, kind, metric) in COLUMNS.items():
            expected = _cell(results[f"{task}-{init}"]["results"][kind][metric])
            assert rows[LABELS[init]][column] == expected, (init, column)
            cells[(init, column)] = expected
    assert len(set(cells.values())) == len(cells)  # the oracle itself tells every cell apart
    assert [rows[LABELS[i]]["kNN top-1"] for i in demo.INITS] == ["0.8", "78.9", "-"]
    # the verdict compares InfoMin with random init, task by task
    for name, stage, kind in (("VOC box AP", "voc", "bbox"), ("COCO box AP", "coco", "bbox"),
                              ("COCO mask AP", "coco", "segm")):
        a = results[f"{stage}-infomin"]["results"][kind]["AP"]
        b = results[f"{stage}-random"]["results"][kind]["AP"]
        assert f"{name}: InfoMin {a:.1f} is behind random init {b:.1f} ({a - b:+.1f})" in written["verdict"]


# ----------------------------------------------------------------------------- initialisation

def _checkpointer_loads(log_text):
    """Files fvcore's checkpointer loaded in a stage log, and whether it started from scratch."""
    loaded = re.findall(r"\[Checkpointer\] Loading from (\S+) \.\.\.", log_text)
    return loaded, "No checkpoint found. Initializing model from scratch" in log_text


def _relative_distance(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.slow
def test_fine_tuning_starts_from_each_inits_converted_backbone(run):
    weights = {init: Path(_marker(run, "convert")[init]["weights"]) for init in ("infomin", "supervised")}
    pkls = {}
    for init, path in weights.items():
        assert path.parent == run.resolve() / "weights" and path.name == f"{init}_R18.pkl"
        with open(path, "rb") as f:
            pkls[init] = pickle.load(f)["model"]
    # a deep backbone tensor: 3 quick iterations move it by well under 1%, a fresh init is ~140% away
    key = "res5.1.conv2.weight"
    for task in demo.TASKS:
        for init in demo.INITS:
            stage_dir = run / "detection" / f"{task}-{init}"
            loaded, scratch = _checkpointer_loads((stage_dir / "log.txt").read_text())
            pkl_loads = [p for p in loaded if p.endswith(".pkl")]
            final = torch.load(stage_dir / "model_final.pth", map_location="cpu")["model"]
            tensor = final[f"backbone.bottom_up.{key}"].numpy()
            if init == "random":
                assert scratch and not pkl_loads, (task, loaded)
                for pkl in pkls.values():
                    assert _relative_distance(tensor, pkl[key]) > 0.5, task
            else:
                assert not scratch and pkl_loads == [str(weights[init])], (task, init, loaded)
                assert _relative_distance(tensor, pkls[init][key]) < 0.05, (task, init)


def test_published_table_names_a_source_for_every_figure_and_a_reason_for_every_gap():
    table = demo_report.paper_table(demo.PAPER)
    for task in demo.TASKS:
        assert f"* {task.upper()}: " in table  # a public source per task
        for init in demo.INITS:
            row = demo.PAPER[task][init]
            if row is None:
                assert (task, init) in demo.PAPER["not_quoted"]
                assert f"{task.upper()} {demo_report.INIT_LABELS[init]}: " in table
            else:
                assert (task, init) not in demo.PAPER["not_quoted"]
    assert "| supervised IN-1M | 53.5 | 81.3 | 58.8 | 39.7 | 35.9 |" in table
