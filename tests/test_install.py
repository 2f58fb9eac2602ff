"""A plain (not editable) install works from any directory: the wheel carries the configs, and the
quick study and a console script run from the installed code, nowhere near this checkout.

Oracles: the checkout's configs/ (what the wheel must carry), the module files Python reports
(the installed copy, not the editable one), and the files the runs leave.
"""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # builds and installs a wheel, then trains for a few iterations


def _package_dirs() -> dict:
    """setup.py's PACKAGE_DIRS, read without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PACKAGE_DIRS":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no PACKAGE_DIRS")


def _run(args, cwd, env, timeout=600):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project built as a wheel (from a copy: the build writes build/ and *.egg-info) and
    installed with `pip install --target`, without dependencies or network."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    shutil.copy(ROOT / "setup.py", src)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ["infomin", *_package_dirs().values()]:
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), "."],
         cwd=src, env=env)
    wheel = next((base / "dist").glob("infomin-*.whl"))
    target = base / "site"
    _run([*pip, "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)], cwd=base, env=env)
    elsewhere = base / "elsewhere"  # no configs/, no checkout: the cwd of every run below
    elsewhere.mkdir()
    return target, elsewhere, dict(env, PYTHONPATH=str(target))


def test_wheel_carries_every_config(installed):
    target, _, _ = installed
    shipped = sorted(p.relative_to(target / "infomin" / "configs").as_posix()
                     for p in (target / "infomin" / "configs").rglob("*.yaml"))
    in_checkout = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml"))
    assert shipped == in_checkout
    for script in ("infomin-demo", "infomin-train-net", "infomin-pretrain"):
        assert (target / "bin" / script).is_file()


def test_quick_study_runs_from_the_installed_package(installed):
    target, elsewhere, env = installed
    out = elsewhere / "study"
    code = ("import json, sys\n"
            "from infomin.study.cli.demo import main\n"
            "code = main(sys.argv[1:])\n"
            "files = {n: m.__file__ for n, m in sys.modules.items() if n.startswith('infomin')}\n"
            "print('MODULES ' + json.dumps(files))\n"
            "sys.exit(code)\n")
    proc = _run([sys.executable, "-c", code, "--quick", "--output", "study", "--device", "cpu"],
                cwd=elsewhere, env=env)
    files = json.loads(proc.stdout.split("MODULES ", 1)[1])
    for name in ("infomin", "infomin.configs", "infomin.study.run", "infomin.pretrain.engine",
                 "infomin.detection.trainer"):
        assert name in files, name
    outside = {n: f for n, f in files.items() if f and not Path(f).is_relative_to(target)}
    assert not outside, f"imported from outside the installed copy: {outside}"
    report = (out / "report.md").read_text()
    assert "| InfoMin |" in report and "| random init |" in report
    assert "Configs: configs/study/." in report
    assert "| InfoMin |" in proc.stdout  # the table is printed


def test_console_script_takes_a_packaged_config_name(installed):
    target, elsewhere, env = installed
    data = elsewhere / "imagefolder"
    _run([sys.executable, "-c", "import sys; from infomin.datasets import generate; "
          "generate(sys.argv[1], seed=0, scale='quick')", str(data)], cwd=elsewhere, env=env)
    out = elsewhere / "pretrain"
    _run([str(target / "bin" / "infomin-pretrain"), "--config-file", "pretrain/infomin_R18_tiny.yaml",
          "DATA.ROOT", str(data / "imagefolder"), "OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu",
          "KNN.ENABLED", "False", "SOLVER.EPOCHS", "1", "SOLVER.ITERS_PER_EPOCH", "1"],
         cwd=elsewhere, env=env)
    ckpt = next(out.glob("*.pth"))
    from infomin.pretrain.config import cfg_from_yaml_string

    cfg = cfg_from_yaml_string(torch.load(ckpt, map_location="cpu", weights_only=False)["config"])
    # the tiny file's own keys and those of its _BASE_ chain (infomin_R50_200ep <- Base-Pretrain)
    assert (cfg.MODEL.ARCH, cfg.MODEL.WIDTH, cfg.VIEWS.IMAGE_SIZE) == ("resnet18", 0.25, 64)
    assert cfg.MODEL.METHOD == "InfoMin"
