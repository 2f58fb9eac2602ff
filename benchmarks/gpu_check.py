#!/usr/bin/env python
"""The GPU node check (`make gpu-check`, `benchmarks/gpu_check.sh`): install offline, then measure.

Why: the project is developed on CPU-only machines. On a GPU node with no package index, this
installs the wheelhouse of `make wheelhouse` into a throwaway virtual environment layered over the
node's own Python (its CUDA torch is used, never reinstalled), and within a time budget (default
8 minutes) runs, each as a subprocess with its own time limit and log:

* the step, loader and COCO-evaluation benchmarks (benchmarks/bench_*.py, where present);
* 300 pretraining iterations on the built-in data from one seed in fp32 and in bf16, whose smoothed
  loss curves must agree (PRECISION_TOLERANCE);
* 50 iterations of Mask R-CNN R50-FPN with Detectron2's AMP on and off: s/iter and peak memory;
* the demo on the GPU.

It writes OUT/gpu_check.json and OUT/gpu_check.md (logs in OUT/logs, runs in OUT/work) and prints
the projected 800-epoch InfoMin R50 time on 8 GPUs. Exit status: 0 when every check passed, 1 when
one failed, timed out, is missing or disagreed, 2 before anything ran (no GPU, bad arguments).

    benchmarks/gpu_check.sh --python python3 --wheels .wheelhouse [--out output/gpu_check]
    python benchmarks/gpu_check.py --python .venv/bin/python --device cpu --tiny   # tests only

Standard library only: it runs under the node's Python before anything is installed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Everything this check reads from the checkout; adjust here when files move.
BENCH_STEP = REPO / "benchmarks" / "bench_step.py"
BENCH_LOADER = REPO / "benchmarks" / "bench_loader.py"
BENCH_COCO_EVAL = REPO / "benchmarks" / "bench_coco_eval.py"
PRETRAIN_CONFIG = REPO / "configs" / "pretrain" / "infomin_R18_tiny.yaml"
DETECTION_CONFIG = REPO / "configs" / "detection" / "coco" / "mask_rcnn_R50_FPN_1x_coco_random.yaml"
TRAIN_NET = REPO / "tools" / "train_net.py"
DEMO = REPO / "tools" / "demo.py"

IMAGENET_TRAIN_IMAGES = 1_281_167
PROJECTION = dict(epochs=800, gpus=8)

# fp32 and bf16 pretraining curves agree when the mean absolute difference of their moving
# averages (window SMOOTH_WINDOW iterations) is at most this fraction of the fp32 curve's mean.
# Measured on a CPU (bf16 autocast there), the first 100 iterations of this very run differed by
# 0.14% (0.0076 nats at a loss near 5.6); 2% leaves room for the runs drifting apart over 300.
PRECISION_TOLERANCE = 0.02
SMOOTH_WINDOW = 25

# Per mode: sizes of each run and each step's time cap in seconds (the budget caps them all).
MODES = {
    "full": dict(data_scale="full", pretrain_iters=300, pretrain_batch=16, detection_iters=50,
                 detection_batch=2, coco_eval_images=1000, demo_args=[],
                 caps=dict(install=90, data=90, bench_step=60, bench_loader=60, bench_coco_eval=60,
                           pretrain=75, train_net=60, demo=None)),
    "tiny": dict(data_scale="quick", pretrain_iters=6, pretrain_batch=16, detection_iters=4,
                 detection_batch=2, coco_eval_images=20, demo_args=["--quick"],
                 caps=dict(install=120, data=60, bench_step=60, bench_loader=60, bench_coco_eval=60,
                           pretrain=60, train_net=90, demo=120)),
}
# Detectron2 times iterations from the 4th on (IterationTimer's warm-up), so tiny runs 4.
# The tiny mode shrinks the R50-FPN detector the way the detection tests do (same structure).
TINY_DETECTION = [
    "MODEL.RESNETS.WIDTH_PER_GROUP", "8", "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "16", "MODEL.FPN.OUT_CHANNELS", "32",
    "MODEL.ROI_BOX_HEAD.CONV_DIM", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64", "MODEL.ROI_MASK_HEAD.CONV_DIM", "32",
    "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "64", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "32",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
]
STEPS = ("install", "torch_apis", "data", "bench_step", "bench_loader", "bench_coco_eval", "pretrain_fp32",
         "pretrain_bf16", "train_net_fp32", "train_net_amp", "demo")
GOOD = ("ok", "skipped")


# torch APIs the project calls that recent releases added or changed: each is checked against the
# node's torch (the project is developed on a newer one) before anything trains.
TORCH_APIS = {
    "DistributedDataParallel(forward_sync_buffers= or broadcast_buffers=)":
        "{'forward_sync_buffers', 'broadcast_buffers'} & set(inspect.signature("
        "torch.nn.parallel.DistributedDataParallel).parameters)",
    "torch.amp.GradScaler(device)": "'device' in inspect.signature(torch.amp.GradScaler).parameters",
    "torch.load(weights_only=, mmap=)":
        "{'weights_only', 'mmap'} <= set(inspect.signature(torch.load).parameters)",
    "torch.autocast('cpu', bfloat16)": "torch.autocast('cpu', dtype=torch.bfloat16) is not None",
}
TORCH_API_PROBE = ("import inspect, json, torch\nout = {}\nfor name, expr in %r.items():\n"
                   "    try:\n        out[name] = bool(eval(expr))\n"
                   "    except Exception as exc:\n        out[name] = False\nprint(json.dumps(out))")


class CheckError(RuntimeError):
    """A problem found before anything ran (exit status 2)."""


# ---- small helpers ----------------------------------------------------------------------------

def probe(python: str, code: str, cwd=None, timeout=120) -> dict:
    """Run `code` (which prints one JSON object) with `python`; return the object."""
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if proc.returncode != 0:
        raise CheckError(f"{python} could not run a check ({proc.stderr.strip().splitlines()[-1:] or '?'})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


TORCH_PROBE = ("import json, sys, torch; c = torch.cuda.is_available(); "
               "print(json.dumps(dict(python=sys.version.split()[0], executable=sys.executable, "
               "torch=torch.__version__, torch_file=torch.__file__, cuda=c, "
               "gpu=torch.cuda.get_device_name(0) if c else None, "
               "site=[p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))])))")


INSTALL_PROBE = ("import json, torch, infomin, detectron2; print(json.dumps(dict(torch=torch.__version__, "
                 "torch_file=torch.__file__, infomin=infomin.__file__, detectron2=detectron2.__file__)))")


def read_jsonl(path: Path) -> list[dict]:
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def find_number(obj, patterns, path=""):
    """(key path, value) of the first number in nested `obj` whose key matches a pattern, in order."""
    flat = []

    def walk(o, p):
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, f"{p}.{k}" if p else str(k))
        elif isinstance(o, list):
            for i, v in enumerate(o):
                walk(v, f"{p}[{i}]")
        elif isinstance(o, (int, float)) and not isinstance(o, bool) and math.isfinite(o):
            flat.append((p, float(o)))

    walk(obj, path)
    for pattern in patterns:
        for key, value in flat:
            if re.search(pattern, key.rsplit(".", 1)[-1], re.IGNORECASE):
                return key, value
    return None, None


IMG_RATE_KEYS = (r"per_gpu", r"^(img|image)s?_?(per_?)?(s|sec|second)$", r"(img|image)s?.*(/|per_?)s",
                 r"(img|image)s?_s$")
PAIR_RATE_KEYS = (r"^pairs?_?(per_?)?(s|sec|second)$", r"pairs?.*(/|per_?)s", r"pairs?_s$")


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def compare_curves(fp32: list[dict], bf16: list[dict], window: int = SMOOTH_WINDOW,
                   tolerance: float = PRECISION_TOLERANCE) -> dict:
    """Agreement of two metrics.jsonl loss curves over the iterations both logged."""
    a = {r["iteration"]: float(r["loss"]) for r in fp32 if "loss" in r and "iteration" in r}
    b = {r["iteration"]: float(r["loss"]) for r in bf16 if "loss" in r and "iteration" in r}
    common = sorted(set(a) & set(b))
    result = dict(iterations=len(common), window=window, tolerance=tolerance,
                  rule=f"mean |MA{window}(fp32) - MA{window}(bf16)| <= {tolerance:g} x mean MA{window}(fp32)")
    if not common:
        return dict(result, agree=False, reason="no iteration logged by both runs")
    xa, xb = [a[i] for i in common], [b[i] for i in common]
    if not all(map(math.isfinite, xa + xb)):
        return dict(result, agree=False, reason="a loss is not finite")
    w = max(1, min(window, len(common)))
    sa, sb = moving_average(xa, w), moving_average(xb, w)
    mad = sum(abs(x - y) for x, y in zip(sa, sb)) / len(sa)
    scale = sum(abs(x) for x in sa) / len(sa)
    rel = mad / scale if scale else float("inf")
    return dict(result, window=w, mean_abs_diff=mad, relative=rel, fp32_first=xa[0], fp32_last=sa[-1],
                bf16_first=xb[0], bf16_last=sb[-1], agree=rel <= tolerance)


def detectron2_metrics(out_dir: Path) -> dict:
    """s/iter (Detectron2's 20-iteration median `time`) and peak memory (its `max_mem` log field)."""
    records = [r for r in read_jsonl(out_dir / "metrics.json") if "time" in r]
    last = records[-1] if records else {}
    mem = None
    log = out_dir / "log.txt"
    if log.is_file():
        found = re.findall(r"max_mem: (\d+)M", log.read_text(encoding="utf-8", errors="replace"))
        mem = int(found[-1]) if found else None
    return dict(s_per_iter=last.get("time"), data_time=last.get("data_time"),
                iteration=last.get("iteration"), max_mem_mb=mem)


def project(img_s_per_gpu: float | None, pairs_s: float | None) -> dict:
    """800 epochs of ImageNet on 8 GPUs at the measured per-GPU rate (views assumed to keep up)."""
    out = dict(epochs=PROJECTION["epochs"], gpus=PROJECTION["gpus"], images=IMAGENET_TRAIN_IMAGES,
               img_s_per_gpu=img_s_per_gpu, loader_pairs_s=pairs_s,
               assumes="the data loader delivers views as fast as the GPUs consume them",
               seconds=None, days=None)
    if img_s_per_gpu:
        s = PROJECTION["epochs"] * IMAGENET_TRAIN_IMAGES / (PROJECTION["gpus"] * img_s_per_gpu)
        out.update(seconds=s, days=s / 86400,
                   loader_pairs_s_needed=PROJECTION["gpus"] * img_s_per_gpu)
    return out


# ---- running steps ----------------------------------------------------------------------------

class Runner:
    """Runs each step as a subprocess in its own session, with a cap and the remaining budget."""

    def __init__(self, out: Path, budget_s: float, env: dict):
        self.out, self.env = out, env
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + budget_s
        self.steps: dict[str, dict] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def record(self, name: str, **entry) -> dict:
        self.steps[name] = entry
        print(f"[gpu_check] {name}: {entry['status']}"
              + (f" ({entry['seconds']:.1f} s)" if entry.get("seconds") is not None else "")
              + (f" - {entry['reason']}" if entry.get("reason") else ""), flush=True)
        return entry

    def run(self, name: str, cmd: list, cap: float | None, cwd: Path) -> dict:
        limit = self.left() if cap is None else min(cap, self.left())
        if limit < 5:
            return self.record(name, status="skipped", reason="time budget used up", seconds=None)
        log = self.logs / f"{name}.log"
        print(f"[gpu_check] {name}: running (limit {limit:.0f} s, log {log})", flush=True)
        start = time.monotonic()
        with open(log, "w", encoding="utf-8") as f:
            f.write("$ " + " ".join(map(str, cmd)) + "\n")
            f.flush()
            proc = subprocess.Popen([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, cwd=cwd,
                                    env=self.env, start_new_session=True)
            try:
                rc = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the step and its data-loader workers
                proc.wait()
                rc = None
        seconds = time.monotonic() - start
        entry = dict(status="ok" if rc == 0 else ("timeout" if rc is None else "failed"), returncode=rc,
                     seconds=seconds, limit_s=limit, log=str(log.relative_to(self.out)))
        if rc != 0:
            text = log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
            tail = [t for t in text.splitlines() if t.strip()][-2:]  # \r: progress bars redraw a line
            entry["reason"] = ("ran past its limit" if rc is None else f"exit status {rc}") + (
                ": " + " | ".join(t.strip() for t in tail) if tail else "")
        return self.record(name, **entry)


def install(python: str, base: dict, wheels: Path, venv: Path, runner: Runner, cap: float) -> tuple[str, dict]:
    """A venv over `python`'s packages (`base`: its TORCH_PROBE) with the wheelhouse installed in it."""
    wheel_files = sorted(wheels.glob("*.whl"))
    if not wheel_files:
        raise CheckError(f"--wheels {wheels}: no .whl files there; build it with `make wheelhouse` "
                         "on a machine with internet access and copy it here.")
    subprocess.run([python, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    vpy = str(venv / "bin" / "python")
    site = probe(vpy, "import json, sysconfig; print(json.dumps(sysconfig.get_paths()['purelib']))")
    # Layer over the chosen interpreter's site-packages, also when it is itself a venv (the node's
    # python3 is); plain path lines, so its .pth hooks (e.g. an editable install) stay out.
    Path(site, "_gpu_check_parent.pth").write_text("\n".join(base["site"]) + "\n", encoding="utf-8")
    cmd = [python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
           "--disable-pip-version-check", "--ignore-installed", "--target", site, "--find-links", wheels,
           *wheel_files]
    entry = runner.run("install", cmd, cap, cwd=venv)
    if entry["status"] != "ok":
        return vpy, entry
    after = probe(vpy, INSTALL_PROBE, cwd=venv)  # not the checkout's folder: its infomin/ would win
    entry.update(wheels=len(wheel_files), torch=after["torch"], torch_file=after["torch_file"],
                 infomin=after["infomin"], detectron2=after["detectron2"])
    if after["torch_file"] != base["torch_file"]:
        entry.update(status="failed", reason=f"the venv imports torch from {after['torch_file']}, not the "
                     f"node's {base['torch_file']}: a wheel replaced torch")
    elif not after["infomin"].startswith(site):
        entry.update(status="failed", reason=f"infomin imports from {after['infomin']}, not the venv")
    runner.record("install", **entry)
    return vpy, entry


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def read_json_file(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_checks(args) -> dict:
    mode = MODES["tiny" if args.tiny else "full"]
    caps = mode["caps"]
    started = time.time()
    base = probe(args.python, TORCH_PROBE)  # before anything is installed or written
    if args.device == "cuda" and not base["cuda"]:
        raise CheckError(f"no CUDA GPU: torch {base['torch']} in {args.python} reports "
                         "torch.cuda.is_available() == False. Run this on the GPU node.")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.device == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("PYTHONPATH", None)  # the checkout must not shadow the installed package
    runner = Runner(out, args.budget_s, env)

    venv_dir = None
    python = args.python
    if args.wheels:
        venv_dir = Path(tempfile.mkdtemp(prefix="infomin-gpu-check-"))
        python, _ = install(args.python, base, Path(args.wheels).resolve(), venv_dir / "venv", runner, caps["install"])
    else:
        runner.record("install", status="skipped", reason="no --wheels: using the packages of --python as they are",
                      seconds=None)
    try:
        if runner.steps["install"]["status"] in GOOD:
            run_all(runner, python, args, mode, work)
    finally:
        if venv_dir is not None:
            shutil.rmtree(venv_dir, ignore_errors=True)
    for name in STEPS:
        runner.steps.setdefault(name, dict(status="skipped", reason="install failed", seconds=None))
    return build_report(runner, base, args, mode, out, started)


def run_all(runner: Runner, python: str, args, mode: dict, work: Path) -> None:
    caps, dev, tiny = mode["caps"], args.device, ["--tiny"] if args.tiny else []
    out = runner.out

    found = probe(python, TORCH_API_PROBE % TORCH_APIS, cwd=work)
    missing = sorted(k for k, ok in found.items() if not ok)
    runner.record("torch_apis", status="failed" if missing else "ok", seconds=None, apis=found,
                  **({"reason": "this torch lacks " + ", ".join(missing)} if missing else {}))

    data = work / "data"
    code = ("import sys; from infomin.datasets.builtin import generate; "
            f"generate(sys.argv[1], seed={args.seed}, scale={mode['data_scale']!r}, progress=False)")
    runner.run("data", [python, "-c", code, data], caps["data"], cwd=work)

    for name, script in (("bench_step", BENCH_STEP), ("bench_loader", BENCH_LOADER)):
        target = out / f"{name.split('_')[1]}.json"
        target.unlink(missing_ok=True)
        if not script.is_file():
            runner.record(name, status="missing", reason=f"{_rel(script)} is not in this checkout",
                          seconds=None)
            continue
        extra = [*tiny, "--no-compile"] if name == "bench_step" and args.tiny else tiny  # tests: no inductor build
        entry = runner.run(name, [python, script, "--device", dev, "--json", target, *extra], caps[name], cwd=work)
        entry["result"] = read_json_file(target)
        entry["json"] = target.name

    if not BENCH_COCO_EVAL.is_file():
        runner.record("bench_coco_eval", status="missing",
                      reason=f"{_rel(BENCH_COCO_EVAL)} is not in this checkout", seconds=None)
    else:
        cmd = [python, BENCH_COCO_EVAL, "--images", mode["coco_eval_images"]]
        target = out / "coco_eval.json"
        has_json = '"--json"' in BENCH_COCO_EVAL.read_text(encoding="utf-8")
        if has_json:
            target.unlink(missing_ok=True)
            cmd += ["--json", target]
        entry = runner.run("bench_coco_eval", cmd, caps["bench_coco_eval"], cwd=work)
        log = out / entry["log"] if entry.get("log") else None
        entry["stdout_tail"] = (log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
                                if log and log.is_file() else [])
        if has_json:
            entry["result"] = read_json_file(target)

    it, batch = mode["pretrain_iters"], mode["pretrain_batch"]
    per_epoch = 3 if args.tiny else 50  # quick data: 60 images; full data: 800 (batch 16)
    workers = 0 if args.tiny else min(8, os.cpu_count() or 1)
    for precision in ("fp32", "bf16"):
        run_dir = work / f"pretrain_{precision}"
        cmd = [python, "-m", "infomin.pretrain.cli.pretrain", "--config-file", PRETRAIN_CONFIG,
               "OUTPUT_DIR", run_dir, "DATA.ROOT", data / "imagefolder", "SEED", str(args.seed),
               "MODEL.DEVICE", dev, "MODEL.PRECISION", precision, "DATA.NUM_WORKERS", str(workers),
               "SOLVER.IMS_PER_BATCH", str(batch), "SOLVER.ITERS_PER_EPOCH", str(per_epoch),
               "SOLVER.EPOCHS", str(math.ceil(it / per_epoch)), "SOLVER.WARMUP_EPOCHS", "0",
               "KNN.ENABLED", "False", "LOG.PERIOD", "1", "LOG.TENSORBOARD", "False",
               "LOG.PROGRESS_BAR", "False", "CHECKPOINT.PERIOD", "100000"]
        entry = runner.run(f"pretrain_{precision}", cmd, caps["pretrain"], cwd=work)
        records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]
        entry.update(iterations=len(records), metrics=str((run_dir / "metrics.jsonl").relative_to(out)))

    for amp in (False, True):
        name = f"train_net_{'amp' if amp else 'fp32'}"
        if amp and dev != "cuda":
            runner.record(name, status="skipped", reason="Detectron2's AMP trainer needs CUDA", seconds=None)
            continue
        run_dir = work / name
        cmd = [python, TRAIN_NET, "--config-file", DETECTION_CONFIG,
               "--coco-dataset", "gpu_check_coco_train", data / "coco/annotations/instances_train2017.json",
               data / "coco/train2017",
               "DATASETS.TRAIN", '("gpu_check_coco_train",)', "DATASETS.TEST", "()",
               "MODEL.WEIGHTS", "", "MODEL.DEVICE", dev, "MODEL.ROI_HEADS.NUM_CLASSES", "5",
               "SOLVER.AMP.ENABLED", str(amp), "SOLVER.MAX_ITER", str(mode["detection_iters"]),
               "SOLVER.IMS_PER_BATCH", str(mode["detection_batch"]), "SOLVER.STEPS", "()",
               "SOLVER.CHECKPOINT_PERIOD", "100000", "TEST.EVAL_PERIOD", "0",
               "TEST.PRECISE_BN.ENABLED", "False", "DATALOADER.NUM_WORKERS", "0" if args.tiny else "4",
               "SEED", str(args.seed), "OUTPUT_DIR", run_dir, *(TINY_DETECTION if args.tiny else [])]
        entry = runner.run(name, cmd, caps["train_net"], cwd=work)
        entry.update(detectron2_metrics(run_dir))
        for weights in run_dir.glob("*.pth"):  # a full R50 Mask R-CNN each: not needed afterwards
            weights.unlink()

    runner.run("demo", [python, DEMO, "--device", dev, "--seed", str(args.seed), "--output", work / "demo",
                        *mode["demo_args"]], caps["demo"], cwd=work)


def build_report(runner: Runner, base: dict, args, mode: dict, out: Path, started: float) -> dict:
    steps = runner.steps
    pre = {p: read_jsonl(out / s["metrics"]) if s.get("metrics") else []
           for p, s in (("fp32", steps["pretrain_fp32"]), ("bf16", steps["pretrain_bf16"]))}
    agreement = compare_curves(pre["fp32"], pre["bf16"], window=SMOOTH_WINDOW if not args.tiny else 2)
    img_key, img_s = find_number(steps["bench_step"].get("result") or {}, IMG_RATE_KEYS)
    pair_key, pairs_s = find_number(steps["bench_loader"].get("result") or {}, PAIR_RATE_KEYS)
    projection = dict(project(img_s, pairs_s), img_s_key=img_key, pairs_s_key=pair_key)
    detection = {k: {f: steps[f"train_net_{k}"].get(f) for f in ("s_per_iter", "data_time", "max_mem_mb")}
                 for k in ("fp32", "amp")}
    ok = all(s["status"] in GOOD for s in steps.values()) and agreement["agree"]
    report = dict(
        schema=1, ok=ok, device=args.device, tiny=args.tiny, gpu=base["gpu"], python=base["python"],
        python_executable=base["executable"], torch=base["torch"], host=platform.node(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)), wall_s=time.time() - started,
        budget_s=args.budget_s, wheels=str(args.wheels) if args.wheels else None,
        steps={k: steps[k] for k in STEPS}, precision_agreement=agreement, detection=detection,
        projection=projection,
    )
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "gpu_check.md").write_text(markdown(report), encoding="utf-8")
    return report


def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def step_result(name: str, report: dict) -> str:
    s = report["steps"][name]
    if s["status"] != "ok":
        return ""
    if name.startswith("pretrain_"):
        return f"{s.get('iterations', 0)} iterations logged"
    if name.startswith("train_net_"):
        return f"{_fmt(s.get('s_per_iter'))} s/iter, max_mem {_fmt(s.get('max_mem_mb'), 'd')} MB"
    if name == "bench_step":
        p = report["projection"]
        return f"{_fmt(p['img_s_per_gpu'])} img/s per GPU ({p['img_s_key'] or 'no img/s key found'})"
    if name == "bench_loader":
        p = report["projection"]
        return f"{_fmt(p['loader_pairs_s'])} pairs/s ({p['pairs_s_key'] or 'no pairs/s key found'})"
    if name == "bench_coco_eval" and s.get("stdout_tail"):
        return s["stdout_tail"][-1].replace("|", "/")[:120]
    if name == "torch_apis":
        return f"{len(s.get('apis', {}))} APIs present"
    if name == "install" and s.get("torch"):
        return f"{s.get('wheels')} wheels over torch {s['torch']}"
    return ""


def projection_line(p: dict) -> str:
    if p["days"] is None:
        return ("Projected InfoMin R50 800 epochs on 8 GPUs: unknown (no img/s per GPU from bench_step).")
    return (f"Projected InfoMin R50 {p['epochs']} epochs on {p['gpus']} GPUs: {p['days']:.1f} days "
            f"({p['seconds'] / 3600:.0f} h) = {p['epochs']} x {p['images']:,} / ({p['gpus']} x "
            f"{p['img_s_per_gpu']:.0f} img/s per GPU), assuming {p['assumes']}; that needs "
            f"{p['loader_pairs_s_needed']:.0f} pairs/s, the loader benchmark gave {_fmt(p['loader_pairs_s'])}.")


def markdown(r: dict) -> str:
    a = r["precision_agreement"]
    lines = [
        f"# GPU check: {'passed' if r['ok'] else 'FAILED'}", "",
        f"{r['gpu'] or 'no GPU'} ({r['device']}{', tiny' if r['tiny'] else ''}), Python {r['python']}, "
        f"torch {r['torch']}, {r['started']}, {r['wall_s']:.0f} s of a {r['budget_s']:.0f} s budget.", "",
        "| check | status | seconds | result |", "| --- | --- | --- | --- |",
    ]
    for name in STEPS:
        s = r["steps"][name]
        result = step_result(name, r)
        if s.get("reason"):
            result = (result + "; " if result else "") + s["reason"].replace("|", "/")[:200]
        lines.append(f"| {name} | {s['status']} | {_fmt(s.get('seconds'), '.1f')} | {result} |")
    agree = ("agree" if a["agree"] else "DISAGREE") + (
        f": mean |diff| {a['mean_abs_diff']:.4f} = {a['relative']:.2%} of the fp32 curve's mean over "
        f"{a['iterations']} iterations (tolerance {a['tolerance']:.0%}; {a['rule']})"
        if "relative" in a else f": {a.get('reason')}")
    lines += ["", f"fp32 vs bf16 pretraining loss: {agree}.", "", projection_line(r["projection"]), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--python", default="python3", help="the node's Python, holding torch (default: %(default)s)")
    p.add_argument("--wheels", help="the wheelhouse to install offline into a throwaway venv over --python "
                                    "(without it, --python's packages are used as they are)")
    p.add_argument("--out", default="output/gpu_check", help="folder for the report (default: %(default)s)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cpu only with --tiny, for tests (default: %(default)s)")
    p.add_argument("--tiny", action="store_true", help="seconds-long runs of every check (tests)")
    p.add_argument("--budget-s", type=float, default=480.0,
                   help="time for everything, install included (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.device == "cpu" and not args.tiny:
        p.error("--device cpu is for tests and needs --tiny")
    if args.wheels and not Path(args.wheels).is_dir():
        p.error(f"--wheels {args.wheels}: no such folder; build it with `make wheelhouse`")
    found = shutil.which(args.python)
    if found is None:
        p.error(f"--python {args.python}: not an executable Python")
    args.python = os.path.abspath(found)  # steps run in other folders; keep venv symlinks as they are
    try:
        report = run_checks(args)
    except CheckError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    print(Path(args.out, "gpu_check.md").read_text(encoding="utf-8"))
    print(f"Report: {Path(args.out, 'gpu_check.json')} and gpu_check.md")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
