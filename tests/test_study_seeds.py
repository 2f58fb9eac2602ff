"""`infomin-demo --seeds 0,1,...`: the study per seed, reported as mean ± std with a spread-aware verdict.

Oracles: numpy's mean and sample std (ddof=1) of the numbers each seed's own stage markers hold;
hand-made per-seed results whose margins lie inside or outside the spread by construction.
"""
import json
import math

import numpy as np
import pytest
from PIL import Image

from infomin.study import run, summary
from infomin.study.cli import demo as cli

INITS = ("infomin", "supervised", "random")
KINDS = {"voc": ("bbox",), "coco": ("bbox", "segm")}


def _results(ap: dict, knn=(30.0, 40.0)) -> dict:
    """One seed's stage results from {(task, kind, init): AP}; AP50/AP75 derived so they differ."""
    out = {}
    for task, kinds in KINDS.items():
        for init in INITS:
            out[f"{task}-{init}"] = {"results": {
                kind: {"AP": ap[(task, kind, init)], "AP50": ap[(task, kind, init)] * 2,
                       "AP75": ap[(task, kind, init)] / 2} for kind in kinds}}
    out["pretrain-infomin"] = {"knn_top1": knn[0]}
    out["pretrain-supervised"] = {"knn_top1": knn[1]}
    return out


def _per_seed(values: dict) -> dict:
    """values: {(task, kind, init): [AP per seed]} -> {seed: results}."""
    n = len(next(iter(values.values())))
    return {s: _results({k: v[s] for k, v in values.items()}) for s in range(n)}


def _filled(over=None):
    base = {(t, k, i): [5.0, 5.0, 5.0] for t, ks in KINDS.items() for k in ks for i in INITS}
    base.update(over or {})
    return base


def test_stat_is_numpys_mean_and_sample_std():
    values = (4.1, 6.3, 5.0)
    s = summary.Stat(values)
    assert math.isclose(s.mean, np.mean(values)) and math.isclose(s.std, np.std(values, ddof=1))
    assert s.text() == f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"
    assert summary.Stat((3.0,)).std is None and summary.Stat((3.0,)).text() == "3.0"
    assert summary.Stat(()).text() == "-"


def test_verdict_counts_a_margin_only_beyond_the_spread():
    # VOC: InfoMin 7 ± 1 vs random 4 ± 1 (margin 3 > spread 1): ahead.
    # COCO box: InfoMin 5.5 ± 2 vs random 5 ± 0 (margin 0.5 < spread 2): within, not a win.
    # COCO mask: InfoMin 3 ± 0.5 vs random 6 ± 0.5 (margin -3): behind.
    values = _filled({("voc", "bbox", "infomin"): [6.0, 7.0, 8.0], ("voc", "bbox", "random"): [3.0, 4.0, 5.0],
                        ("coco", "bbox", "infomin"): [3.5, 5.5, 7.5], ("coco", "bbox", "random"): [5.0, 5.0, 5.0],
                        ("coco", "segm", "infomin"): [2.5, 3.0, 3.5], ("coco", "segm", "random"): [5.5, 6.0, 6.5],
                        ("voc", "bbox", "supervised"): [6.5, 7.0, 7.5]})
    agg = summary.aggregate(_per_seed(values))
    assert summary.compare(agg["VOC AP"]["infomin"], agg["VOC AP"]["random"]) == ("ahead", 3.0, 1.0)
    word, margin, spread = summary.compare(agg["COCO box AP"]["infomin"], agg["COCO box AP"]["random"])
    assert (word, round(margin, 6), round(spread, 6)) == ("within", 0.5, 2.0)
    assert summary.compare(agg["mask AP"]["infomin"], agg["mask AP"]["random"])[0] == "behind"
    # against supervised: VOC 7 ± 1 vs 7 ± 0.5 is within; COCO box 5.5 vs 5 ± 0 within (spread 2)
    assert summary.compare(agg["VOC AP"]["infomin"], agg["VOC AP"]["supervised"])[0] == "within"
    text = summary.spread_verdict(agg, [0, 1, 2])
    assert "on 1 of 3 metrics against random init and on 0 of 3 against supervised init" in text
    assert "VOC box AP: InfoMin 7.0 ± 1.0 is ahead of random init 4.0 ± 1.0 (margin +3.0, spread 1.0)" in text
    assert "COCO box AP: InfoMin 5.5 ± 2.0 is within the seed spread of random init 5.0 ± 0.0" in text
    assert "COCO mask AP: InfoMin 3.0 ± 0.5 is behind random init 6.0 ± 0.5 (margin -3.0, spread 0.5)" in text


def test_a_margin_equal_to_the_spread_is_not_a_win_and_one_seed_has_no_spread():
    values = _filled({("voc", "bbox", "infomin"): [5.0, 6.0, 7.0], ("voc", "bbox", "random"): [5.0, 5.0, 5.0]})
    agg = summary.aggregate(_per_seed(values))
    assert summary.compare(agg["VOC AP"]["infomin"], agg["VOC AP"]["random"]) == ("within", 1.0, 1.0)
    one = summary.aggregate({0: _results({k: v[0] for k, v in values.items()})})
    assert summary.compare(one["VOC AP"]["infomin"], one["VOC AP"]["random"])[0] == "no spread"
    assert "no spread measured" in summary.spread_verdict(one, [0])


def test_missing_and_nan_results_are_left_out_of_the_statistics():
    per_seed = _per_seed(_filled({("voc", "bbox", "infomin"): [2.0, 4.0, 6.0]}))
    per_seed[1]["voc-infomin"]["results"]["bbox"]["AP"] = float("nan")  # no detections at seed 1
    del per_seed[2]["pretrain-infomin"]
    agg = summary.aggregate(per_seed)
    assert agg["VOC AP"]["infomin"].values == (2.0, 6.0)
    assert agg["kNN top-1"]["infomin"].values == (30.0, 30.0)
    assert agg["kNN top-1"]["random"].values == ()


def test_summary_table_cells_are_mean_and_std_per_init_and_column(tmp_path):
    rng = np.random.default_rng(0)
    values = {(t, k, i): list(rng.uniform(1, 20, 3).round(3)) for t, ks in KINDS.items() for k in ks for i in INITS}
    per_seed = _per_seed(values)
    written = summary.write_summary(tmp_path, per_seed, run.PAPER, scale=run.SCALES["demo"])
    table = (tmp_path / "report.md").read_text().split("## Mean ± std over seeds", 1)[1]
    rows = {}
    lines = [x for x in table.split("\n## ", 1)[0].splitlines() if x.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    labels = {"infomin": "InfoMin", "supervised": "supervised", "random": "random init"}
    for column, (task, kind, metric) in summary.COLUMNS.items():
        for init in INITS:
            vals = [per_seed[s][f"{task}-{init}"]["results"][kind][metric] for s in per_seed]
            assert rows[labels[init]][column] == f"{np.mean(vals):.1f} ± {np.std(vals, ddof=1):.1f}", (column, init)
    assert rows["InfoMin"]["kNN top-1"] == "30.0 ± 0.0" and rows["random init"]["kNN top-1"] == "-"
    with Image.open(written["ap"]) as img:
        assert img.format == "PNG"


def test_bad_seeds_and_scales_give_clear_errors(tmp_path, capsys):
    for seeds, msg in (("0,0", "distinct"), ("a,b", "integers"), ("-1", "non-negative")):
        assert cli.main(["--output", str(tmp_path), "--seeds", seeds, "--device", "cpu"]) == 2
        assert msg in capsys.readouterr().err
    assert cli.main(["--output", str(tmp_path), "--quick", "--scale", "demo", "--device", "cpu"]) == 2
    assert "--quick is --scale quick" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "study"
    code = cli.main(["--quick", "--output", str(out), "--device", "cpu", "--seeds", "0,1"])
    return out, code


def _marker(folder, stage):
    return json.loads((folder / "stages" / f"{stage}.json").read_text())


@pytest.mark.slow
def test_two_seed_quick_study_reports_the_mean_and_std_of_each_seeds_stages(two_seed_run, capsys):
    out, code = two_seed_run
    assert code == 0
    seeds = (0, 1)
    # every seed ran the whole study in its own folder, on its own data
    for s in seeds:
        assert sorted(p.stem for p in (out / f"seed-{s}" / "stages").glob("*.json")) == sorted(run.STAGES)
    manifests = [json.loads((out / f"seed-{s}" / "data" / "manifest.json").read_text()) for s in seeds]
    assert [m["seed"] for m in manifests] == [0, 1]
    report = (out / "report.md").read_text()
    table = report.split("## Mean ± std over seeds", 1)[1].split("## Each seed", 1)[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    header = rows.pop("init")
    labels = {"infomin": "InfoMin", "supervised": "supervised", "random": "random init"}
    for init in INITS:
        row = dict(zip(header, rows[labels[init]]))
        for column, (task, kind, metric) in summary.COLUMNS.items():
            vals = [_marker(out / f"seed-{s}", f"{task}-{init}")["result"]["results"][kind][metric] for s in seeds]
            vals = [v for v in vals if not math.isnan(v)]
            want = ("-" if not vals else f"{vals[0]:.1f}" if len(vals) == 1
                    else f"{np.mean(vals):.1f} ± {np.std(vals, ddof=1):.1f}")
            assert row[column] == want, (init, column, vals)
        if init != "random":
            knn = [_marker(out / f"seed-{s}", f"pretrain-{init}")["result"]["knn_top1"] for s in seeds]
            assert row["kNN top-1"] == f"{np.mean(knn):.1f} ± {np.std(knn, ddof=1):.1f}"
    assert "Over seeds 0, 1 (mean ± sample std)" in report
    with Image.open(out / "ap.png") as img:
        assert img.format == "PNG" and img.size[0] > 200


@pytest.mark.slow
def test_two_seed_rerun_reuses_every_seeds_stages(two_seed_run, capsys):
    out, _ = two_seed_run
    mtimes = lambda: {p: p.stat().st_mtime_ns for p in out.glob("seed-*/stages/*.json")}
    before = mtimes()
    assert len(before) == 2 * len(run.STAGES)
    assert cli.main(["--quick", "--output", str(out), "--device", "cpu", "--seeds", "0,1"]) == 0
    assert mtimes() == before
    assert "Over seeds 0, 1" in capsys.readouterr().out


def test_every_scale_names_loadable_configs_and_built_in_data():
    from infomin.configs import get_config_file
    from infomin.datasets import builtin
    from infomin.pretrain.config import load_cfg, validate
    from infomin.study.scales import SCALES, resolve_scale

    for scale in SCALES.values():
        assert scale.data in builtin.SCALES, scale.name
        for init, name in scale.pretrain.items():
            opts = list(scale.pretrain_opts)
            if init != "infomin" and "MODEL.QUEUE_SIZE" in opts:  # as the study does: only InfoMin has a queue
                del opts[opts.index("MODEL.QUEUE_SIZE"):opts.index("MODEL.QUEUE_SIZE") + 2]
            cfg = load_cfg(get_config_file(name), opts)
            validate(cfg)
            assert cfg.MODEL.ARCH == "resnet18" and (cfg.MODEL.METHOD.lower() == "supervised") == (init == "supervised")
        assert set(scale.detection) == {"voc", "coco"}
    assert resolve_scale("auto", "cuda:0").name == "gpu" and resolve_scale(None, "cpu").name == "demo"
    with pytest.raises(ValueError, match="unknown --scale"):
        resolve_scale("huge", "cpu")


@pytest.mark.slow
def test_one_stage_rerun_over_seeds_keeps_the_later_stages_in_the_summary(two_seed_run, capsys):
    out, _ = two_seed_run
    before = (out / "report.md").read_text()
    assert cli.main(["--quick", "--output", str(out), "--device", "cpu", "--seeds", "0,1",
                     "--stage", "voc-random"]) == 0
    for s in (0, 1):  # that stage ran again in each seed's folder
        assert _marker(out / f"seed-{s}", "voc-random")["stage"] == "voc-random"
    after = (out / "report.md").read_text()
    # the COCO stages after it were not rerun but are still in the table (deterministic rerun)
    table = lambda text: text.split("## Mean ± std over seeds", 1)[1].split("## Each seed", 1)[0]
    assert table(after) == table(before)


@pytest.mark.slow
def test_seeds_run_side_by_side_give_the_sequential_results(two_seed_run, tmp_path, capsys, monkeypatch):
    """--jobs 2: each seed in its own process (its log in seed-N/demo.log), the same numbers as one
    process running the seeds in turn (the fixture), and the same report table."""
    seq, _ = two_seed_run
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the fixture's one torch thread (conftest), in the children too
    out = tmp_path / "parallel"
    assert cli.main(["--quick", "--output", str(out), "--device", "cpu", "--seeds", "0,1", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    for s in (0, 1):
        assert f"seed {s}: done" in printed
        assert "InfoMin study" in (out / f"seed-{s}" / "demo.log").read_text()
        for stage in run.STAGES:
            if stage.startswith(("voc-", "coco-", "pretrain-")):
                a, b = _marker(seq / f"seed-{s}", stage)["result"], _marker(out / f"seed-{s}", stage)["result"]
                assert a.get("results") == b.get("results") and a.get("knn_top1") == b.get("knn_top1"), (s, stage)
    table = lambda text: text.split("## Mean ± std over seeds", 1)[1].split("## Each seed", 1)[0]
    assert table((out / "report.md").read_text()) == table((seq / "report.md").read_text())


def test_a_failing_seed_process_stops_the_study_with_its_log(tmp_path, capsys):
    # `--stage report` in an empty folder: each child refuses (its earlier stages never ran)
    assert cli.main(["--quick", "--output", str(tmp_path), "--device", "cpu", "--seeds", "0,1", "--jobs", "2",
                     "--stage", "report"]) == 2
    err = capsys.readouterr().err
    assert "seeds 0, 1 failed" in err and str(tmp_path / "seed-0" / "demo.log") in err
    assert not (tmp_path / "report.md").exists()
    assert cli.main(["--output", str(tmp_path), "--seeds", "0,1", "--jobs", "0", "--device", "cpu"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_side_by_side_seeds_share_the_cores_and_a_silent_child_is_an_error(tmp_path, monkeypatch, capsys):
    """Each child gets cores // jobs torch threads unless OMP_NUM_THREADS is set; a child that exits
    0 without its stages' results stops the study instead of the parent running them itself."""
    import os
    import subprocess

    seen = []

    class Done:
        returncode = 0

        def __init__(self, cmd, env, **kw):
            seen.append((cmd, env))

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Done)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(run.time, "sleep", lambda s: None)
    with pytest.raises(RuntimeError, match="seed 0's process finished but left stages"):
        run.run_demo(tmp_path, quick=True, device="cpu", seeds=[0, 1, 2], jobs=3)
    assert [c[c.index("--seed") + 1] for c, _ in seen] == ["0", "1", "2"]
    assert {env["OMP_NUM_THREADS"] for _, env in seen} == {"5"}
    assert all(c[c.index("--output") + 1] == str(tmp_path.resolve() / f"seed-{c[c.index('--seed') + 1]}")
               for c, _ in seen)
    seen.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with pytest.raises(RuntimeError):
        run.run_demo(tmp_path, quick=True, device="cpu", seeds=[0, 1], jobs=3)
    assert {env["OMP_NUM_THREADS"] for _, env in seen} == {"2"}
