"""`infomin-demo --quick` (`tools/demo.py`, `infomin.study.cli.demo`): the whole study runs end to end,
writes its report, and reuses stages.

Oracles: the stage markers and files the run leaves, PIL for the PNGs, Detectron2's own log line
for where a resumed fine-tuning starts, and the published numbers with their sources (MoCo's and PyContrast's detection READMEs).
"""
import json
import time
from pathlib import Path

import pytest
from PIL import Image

from infomin.study import run
from infomin.study.cli import demo as cli


@pytest.fixture(scope="module")
def quick_run(demo_quick_run):
    return demo_quick_run  # the session's one quick run (tests/conftest.py), shared with other files


def _mtimes(out: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")}


@pytest.mark.slow
def test_quick_demo_writes_report_tables_and_plots(quick_run, capsys):
    out, code, _ = quick_run
    assert code == 0
    assert sorted(_mtimes(out)) == sorted(f"{s}.json" for s in run.STAGES)
    report = (out / "report.md").read_text()
    for label in ("| InfoMin |", "| supervised |", "| random init |"):
        assert label in report
    # the published full-scale rows sit beside the run's table, each figure with its source
    assert "| InfoMin Aug | n/q | n/q | n/q | 40.6 | 36.7 |" in report
    assert "| supervised IN-1M | 53.5 | 81.3 | 58.8 | 39.7 | 35.9 |" in report
    assert "| random init | n/q | n/q | n/q | 32.8 | 29.9 |" in report
    assert "facebookresearch/moco detection/README.md" in report and "pycontrast/detection/README.md" in report
    for name in ("curves.png", "ap.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 100
    for task in run.TASKS:
        for init in run.INITS:
            result = json.loads((out / "stages" / f"{task}-{init}.json").read_text())["result"]
            kinds = {"voc": {"bbox"}, "coco": {"bbox", "segm"}}[task]
            assert set(result["results"]) == kinds
            for values in result["results"].values():
                assert set(values) == {"AP", "AP50", "AP75"}
                assert all(v != v or 0.0 <= v <= 100.0 for v in values.values())  # nan: no dets
    # the converted weights are Detectron2 zoo pickles of a ResNet-18 (stem + res2..res5)
    import pickle

    with open(out / "weights" / "infomin_R18.pkl", "rb") as f:
        zoo = pickle.load(f)
    assert "stem.conv1.weight" in zoo["model"] and "res5.1.conv2.norm.running_var" in zoo["model"]


@pytest.mark.slow
def test_rerun_reuses_every_stage(quick_run, capsys):
    out, _, first = quick_run
    before = _mtimes(out)
    start = time.time()
    assert cli.main(["--quick", "--output", str(out), "--device", "cpu"]) == 0
    assert _mtimes(out) == before  # no stage ran again
    assert time.time() - start < first / 3
    assert "| InfoMin |" in capsys.readouterr().out  # the table is printed


@pytest.mark.slow
def test_stage_reruns_alone_and_detection_resumes(quick_run, capsys):
    out, _, _ = quick_run
    before = _mtimes(out)
    assert cli.main(["--quick", "--output", str(out), "--device", "cpu", "--stage", "report"]) == 0
    after = _mtimes(out)
    assert after["report.json"] != before["report.json"]
    assert {k: v for k, v in after.items() if k != "report.json"} == \
        {k: v for k, v in before.items() if k != "report.json"}

    # An interruption after training but before the stage finished: the marker is missing, the
    # stage's folder still has its checkpoints, so the rerun resumes at the last iteration.
    (out / "stages" / "voc-random.json").unlink()
    log = out / "detection" / "voc-random" / "log.txt"
    assert cli.main(["--quick", "--output", str(out), "--device", "cpu"]) == 0
    max_iter = run.QUICK["detection"][run.QUICK["detection"].index("SOLVER.MAX_ITER") + 1]
    assert f"Starting training from iteration {max_iter}" in log.read_text()
    assert (out / "stages" / "voc-random.json").is_file()


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert cli.main(["--output", str(tmp_path / "x"), "--stage", "coco-random"]) == 2
    assert "run the whole demo first" in capsys.readouterr().err
    assert cli.main(["--output", str(tmp_path / "x"), "--device", "tpu"]) == 2
    assert "--device must be" in capsys.readouterr().err
