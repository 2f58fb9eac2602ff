"""The offline GPU-node tooling: the wheelhouse's requirement walk and the GPU check's orchestration.

No network and no GPU: the wheel walk runs on hand-made wheel metadata, the GPU check in its
`--device cpu --tiny` mode (every step, scaled down) and in its refusal without a GPU.
"""
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent


def _load(rel):
    spec = importlib.util.spec_from_file_location(Path(rel).stem, REPO / rel)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bw = _load("tools/build_wheelhouse.py")
gc = _load("benchmarks/gpu_check.py")


# ---- the wheelhouse's list -----------------------------------------------------------------------

def test_root_requirements_are_the_project_needs_minus_the_node():
    names = [canonicalize_name(r.name) for r in bw.root_requirements(REPO, "3.12")]
    for needed in ("detectron2", "fvcore", "iopath", "yacs", "pycocotools", "faster-coco-eval",
                   "infomin", "omegaconf", "hydra-core", "termcolor", "tabulate", "cloudpickle"):
        assert needed in names
    # requirements.txt pins torch/torchvision and lists numpy, timm, ... : the node has them
    listed = {canonicalize_name(Requirement(line).name) for line in bw.requirement_lines(REPO / "requirements.txt")}
    assert {"torch", "torchvision", "numpy", "timm", "scikit-image", "matplotlib", "tqdm"} <= listed
    assert not set(names) & bw.PREINSTALLED
    assert len(names) == len(set(names))


def test_root_requirements_merge_bounds_and_honour_extra_preinstalled(tmp_path):
    (tmp_path / "requirements.txt").write_text("torch==2.14.1\nfoo>=1.0  # why\n-e .\n\n# note\nbar\n")
    (tmp_path / "setup.py").write_text("setup(name='x', install_requires=['foo<2', 'baz; python_version<\"3.12\"'])\n")
    reqs = {canonicalize_name(r.name): r for r in bw.root_requirements(tmp_path, "3.12", bw.PREINSTALLED | {"bar"})}
    assert set(reqs) == {"foo", *bw.LOCAL_BUILDS}  # bar preinstalled, baz only < 3.12
    assert str(reqs["foo"].specifier) in ("<2,>=1.0", ">=1.0,<2")
    assert "baz" in {r.name for r in bw.root_requirements(tmp_path, "3.11")}


def _wheel(folder, name, version, requires=()):
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", meta)
    return path


def _fake_index(tmp_path, index):
    """fetch(req) over {name: {version: [requires]}}: the newest version the requirement allows."""
    fetched = []

    def fetch(req):
        versions = sorted(index[canonicalize_name(req.name)], key=Version)
        allowed = [v for v in versions if req.specifier.contains(v, prereleases=True)]
        if not allowed:  # what pip download reports, as the real fetcher raises it
            raise bw.WheelhouseError(f"no version of {req.name} satisfies {req.specifier}")
        version = allowed[-1]
        fetched.append(f"{req.name}=={version}")
        return bw.read_wheel(_wheel(tmp_path, req.name, version, index[canonicalize_name(req.name)][version]))

    return fetch, fetched


def test_resolve_walks_wheel_metadata_for_the_target_python(tmp_path):
    index = {
        "app": {"1.0": ["torch>=2", "lib>=1", "dev-tool; extra == 'dev'", "old-shim; python_version < '3.12'",
                        "plug[fast]"]},
        "lib": {"1.0": [], "1.5": ["numpy"]},
        "plug": {"0.3": ["speedup; extra == 'fast'", "docs-tool; extra == 'docs'"]},
        "speedup": {"2.0": []}, "old-shim": {"0.1": []}, "dev-tool": {"1": []}, "docs-tool": {"1": []},
    }
    fetch, fetched = _fake_index(tmp_path, index)
    chosen = bw.resolve([Requirement("app")], fetch, "3.12", bw.PREINSTALLED)
    assert set(chosen) == {"app", "lib", "plug", "speedup"}
    assert str(chosen["lib"].version) == "1.5"
    assert chosen["speedup"].requested_by == ["plug"]
    assert not any(f.startswith(("torch", "numpy")) for f in fetched)  # preinstalled: never fetched

    fetch, _ = _fake_index(tmp_path, index)
    assert "old-shim" in bw.resolve([Requirement("app")], fetch, "3.11", bw.PREINSTALLED)


def test_resolve_refetches_when_a_later_requirement_narrows_the_version(tmp_path):
    # omegaconf/hydra-core in real life: the newest omegaconf is chosen first, hydra-core caps it
    index = {"omegaconf": {"2.3.1": ["antlr4==4.9.3"], "2.4.0": ["antlr4==4.11"]},
             "hydra-core": {"1.3.8": ["omegaconf>=2.2,<2.4"]}, "antlr4": {"4.9.3": [], "4.11": []}}
    fetch, fetched = _fake_index(tmp_path, index)
    chosen = bw.resolve([Requirement("omegaconf>=2.1"), Requirement("hydra-core")], fetch, "3.12", frozenset())
    assert str(chosen["omegaconf"].version) == "2.3.1"
    assert fetched[:3] == ["omegaconf==2.4.0", "hydra-core==1.3.8", "antlr4==4.11"]
    assert "omegaconf==2.3.1" in fetched
    assert chosen["omegaconf"].requested_by == ["project", "hydra-core"]

    fetch, _ = _fake_index(tmp_path, {"a": {"1": ["b<1"]}, "b": {"0.5": [], "2": []}})
    with pytest.raises(bw.WheelhouseError, match="no version of b satisfies"):  # both bounds asked for
        bw.resolve([Requirement("b>=2"), Requirement("a")], fetch, "3.12", frozenset())


def test_install_detectron2_wheel_dir_refuses_a_wrong_sdist(tmp_path, capsys):
    d2 = _load("tools/install_detectron2.py")
    bogus = tmp_path / "pb1-detectron2-0.6.tar.gz"
    bogus.write_bytes(b"not the pinned archive")
    assert d2.main(["--wheel-dir", str(tmp_path / "wheels"), "--sdist", str(bogus)]) == 1
    assert "sha256" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.whl"))


# ---- the GPU check's pieces ----------------------------------------------------------------------

def test_compare_curves_on_hand_computed_curves():
    fp32 = [{"iteration": i, "loss": v} for i, v in enumerate([5.0, 4.0, 3.0, 2.0], 1)]
    same = gc.compare_curves(fp32, fp32, window=2)
    assert same["agree"] and same["mean_abs_diff"] == 0
    # bf16 0.3 higher everywhere: moving averages differ by 0.3; fp32's MA2 is 5, 4.5, 3.5, 2.5 (mean 3.875)
    off = gc.compare_curves(fp32, [dict(r, loss=r["loss"] + 0.3) for r in fp32], window=2, tolerance=0.05)
    assert off["mean_abs_diff"] == pytest.approx(0.3)
    assert off["relative"] == pytest.approx(0.3 / 3.875)
    assert not off["agree"]
    assert gc.compare_curves(fp32, fp32[:2] + [{"iteration": 3, "loss": float("nan")}])["agree"] is False
    assert gc.compare_curves(fp32, [{"iteration": 9, "epoch": 1}])["agree"] is False


def test_moving_average_is_trailing():
    assert gc.moving_average([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5]


def test_projection_and_rate_keys():
    key, value = gc.find_number({"r50": {"fp32": {"img_per_s": 10.0}, "bf16": {"img_per_s_per_gpu": 800.0}}},
                                gc.IMG_RATE_KEYS)
    assert (key, value) == ("r50.bf16.img_per_s_per_gpu", 800.0)
    assert gc.find_number({"loader": {"pairs_per_s": 1500, "workers": 8}}, gc.PAIR_RATE_KEYS)[1] == 1500
    p = gc.project(800.0, 1500.0)
    assert p["seconds"] == pytest.approx(800 * 1281167 / (8 * 800.0))
    assert p["loader_pairs_s_needed"] == 6400
    assert gc.project(None, None)["days"] is None


def test_torch_api_probe_names_what_this_torch_lacks():
    apis = dict(gc.TORCH_APIS, bogus="hasattr(torch, 'no_such_api')", broken="torch.no_such_call()")
    found = gc.probe(sys.executable, gc.TORCH_API_PROBE % apis)
    assert found == {**{name: True for name in gc.TORCH_APIS}, "bogus": False, "broken": False}


def test_detectron2_metrics_reads_time_and_max_mem(tmp_path):
    (tmp_path / "metrics.json").write_text(
        '{"iteration": 19, "time": 0.5, "data_time": 0.01}\n{"iteration": 49, "time": 0.25, "data_time": 0.02}\n')
    (tmp_path / "log.txt").write_text("iter: 19 ... max_mem: 3000M\niter: 49  time: 0.2500  max_mem: 3121M\n")
    assert gc.detectron2_metrics(tmp_path) == dict(s_per_iter=0.25, data_time=0.02, iteration=49, max_mem_mb=3121)


# ---- the GPU check end to end --------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_without_a_gpu_it_refuses_before_installing_anything(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()  # empty: the GPU refusal must come before the wheelhouse is even looked at
    proc = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--python", sys.executable,
                           "--wheels", str(wheels), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no CUDA GPU" in proc.stderr and "torch.cuda.is_available() == False" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_wrapper_refuses_a_missing_python(tmp_path):
    proc = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--python", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not an executable Python" in proc.stderr


@pytest.mark.slow
def test_tiny_cpu_run_writes_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(gc, "BENCH_COCO_EVAL", tmp_path / "bench_coco_eval.py")  # absent: recorded as missing
    out = tmp_path / "out"
    rc = gc.main(["--python", sys.executable, "--device", "cpu", "--tiny", "--out", str(out)])
    report = json.loads((out / "gpu_check.json").read_text())
    steps = report["steps"]
    assert list(steps) == list(gc.STEPS)
    assert steps["bench_coco_eval"]["status"] == "missing"
    for name, script in (("bench_step", gc.BENCH_STEP), ("bench_loader", gc.BENCH_LOADER)):
        assert steps[name]["status"] == ("ok" if script.is_file() else "missing")
    assert rc == 1 and report["ok"] is False  # something is missing
    assert steps["install"]["status"] == "skipped"  # no --wheels
    assert steps["torch_apis"]["status"] == "ok" and set(steps["torch_apis"]["apis"]) == set(gc.TORCH_APIS)
    assert steps["train_net_amp"]["status"] == "skipped"  # AMP needs CUDA
    for name in ("data", "pretrain_fp32", "pretrain_bf16", "train_net_fp32", "demo"):
        assert steps[name]["status"] == "ok", steps[name]
    assert steps["pretrain_fp32"]["iterations"] == steps["pretrain_bf16"]["iterations"] == 6
    assert steps["train_net_fp32"]["s_per_iter"] > 0
    assert report["detection"]["fp32"]["s_per_iter"] == steps["train_net_fp32"]["s_per_iter"]
    agreement = report["precision_agreement"]
    assert agreement["iterations"] == 6 and agreement["agree"] in (True, False) and "relative" in agreement
    assert set(report["projection"]) >= {"img_s_per_gpu", "loader_pairs_s", "seconds", "days", "assumes"}
    assert report["device"] == "cpu" and report["tiny"] is True and report["torch"] == torch.__version__
    md = (out / "gpu_check.md").read_text()
    assert "| check | status | seconds | result |" in md
    for name in gc.STEPS:
        assert f"| {name} | {steps[name]['status']} |" in md
    assert "fp32 vs bf16 pretraining loss" in md and "Projected InfoMin R50 800 epochs on 8 GPUs" in md
    assert not list((out / "work" / "train_net_fp32").glob("*.pth"))  # R50 weights are not kept
    assert "Projected InfoMin R50" in capsys.readouterr().out


# ---- the study on a GPU node (benchmarks/gpu_study.sh) -------------------------------------------

GPU_STUDY = REPO / "benchmarks" / "gpu_study.sh"


def _gpu_study(*args, cwd):
    return subprocess.run(["bash", str(GPU_STUDY), "--python", sys.executable, *args], cwd=cwd,
                          capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def test_gpu_study_refuses_without_a_gpu_or_wheels_or_with_a_bad_argument(tmp_path):
    if not torch.cuda.is_available():  # the refusal without a GPU (a GPU machine would run the study)
        r = _gpu_study("--out", str(tmp_path / "out"), cwd=tmp_path)
        assert r.returncode == 2 and "sees no CUDA GPU" in r.stderr and not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    r = _gpu_study("--device", "cpu", "--wheels", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2 and "holds no .whl files" in r.stderr and "make wheelhouse" in r.stderr
    r = _gpu_study("--sedes", "0,1", cwd=tmp_path)
    assert r.returncode == 2 and "unknown argument '--sedes'" in r.stderr


@pytest.mark.slow
def test_gpu_study_runs_the_seeds_side_by_side_from_outside_the_checkout(tmp_path):
    """The node's command on CPU at the quick scale: two seeds at once, the report and stage times."""
    r = _gpu_study("--device", "cpu", "--scale", "quick", "--seeds", "0,1", "--jobs", "2",
                   "--out", "out", cwd=tmp_path)  # a relative --out is the caller's folder, not the script's
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "seed 0: done" in r.stdout and "seed 1: done" in r.stdout
    assert "Over seeds 0, 1 (mean ± sample std)" in (tmp_path / "out" / "report.md").read_text()
    times = [line for line in r.stdout.splitlines() if line.strip().startswith(("seed-0:", "seed-1:"))]
    assert len(times) == 2 and all("pretrain-infomin" in t and "coco-random" in t for t in times)
    assert "infomin" in r.stdout.split("| infomin", 1)[1].split("\n", 1)[0]
