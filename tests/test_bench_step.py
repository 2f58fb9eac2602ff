"""benchmarks/bench_step.py: its smoke mode runs all variants through the real step and writes the
report the GPU check reads (`--device cuda --json OUT/step.json` there)."""
import json
import os
import runpy

import pytest

from _pretrain_helpers import REPO

BENCH = os.path.join(REPO, "benchmarks", "bench_step.py")


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(BENCH)


def test_tiny_cpu_run_writes_every_variant_with_its_figures(bench, tmp_path, capsys):
    out = tmp_path / "sub" / "step.json"
    assert bench["main"](["--tiny", "--device", "cpu", "--no-compile", "--threads", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device_type"] == "cpu" and report["torch"] and report["device"].endswith("1 torch threads")
    assert (report["arch"], report["width"], report["image_size"], report["batch"]) == ("resnet18", 0.25, 64, 4)
    assert "VmHWM" in report["memory_kind"] or "ru_maxrss" in report["memory_kind"]
    assert report["target_met"] is None  # a CPU cannot judge the GPU target
    v = report["variants"]
    assert list(v) == ["pycontrast", "ours", "ours+compile"]
    assert v["ours+compile"] == {"skipped": "--no-compile"}
    assert (v["pycontrast"]["precision"], v["pycontrast"]["layout"], v["pycontrast"]["optimizer"]) == (
        "fp32", "NCHW", "SGD (for_loop)")
    assert (v["ours"]["precision"], v["ours"]["layout"], v["ours"]["optimizer"]) == (
        "bfloat16 autocast", "channels_last", "SGD (fused)")
    for name in ("pycontrast", "ours"):
        r = v[name]
        assert r["img_per_s"] == pytest.approx(4 * 2 / r["seconds"])
        assert r["img_per_cpu_s"] == pytest.approx(4 * 2 / r["cpu_seconds"])
        assert r["peak_memory_mib"] > 0 and r["host_syncs_per_step"] is None and r["iters"] == 2
        assert r["loss"] > 0
    assert v["pycontrast"]["ratio_vs_baseline"] == 1.0
    assert v["ours"]["ratio_vs_baseline"] == pytest.approx(v["ours"]["img_per_s"] / v["pycontrast"]["img_per_s"])
    printed = capsys.readouterr().out
    assert "pycontrast" in printed and "skipped: --no-compile" in printed and "cannot be judged here" in printed


def test_bad_arguments_are_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench["main"](["--tiny", "--device", "cpu", "--batch", "0"])
    assert "--batch must be >= 1" in capsys.readouterr().err


def test_compile_variant_is_skipped_with_the_reason_when_compile_is_unavailable(bench, tmp_path, monkeypatch):
    monkeypatch.setitem(bench["main"].__globals__, "compile_unavailable", lambda device: "no compiler here")
    out = tmp_path / "step.json"
    monkeypatch.setitem(bench["VARIANTS"], "ours", bench["VARIANTS"]["pycontrast"])  # keep it short
    assert bench["main"](["--tiny", "--device", "cpu", "--threads", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["variants"]["ours+compile"] == {"skipped": "no compiler here"}
