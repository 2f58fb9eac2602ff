"""The whole InfoMin study in one command, on the built-in data: its stages and their order.

The study is the top layer: it drives `infomin.pretrain` and `infomin.detection`, which never
import it. The command line is `infomin.study.cli` (`make demo`, `tools/demo.py`, `infomin-demo`).

Why: a new user sees every part work together (data -> InfoMin and supervised pretraining ->
conversion -> Faster R-CNN on VOC and Mask R-CNN on COCO from each init, random init included ->
Detectron2's evaluators -> report) in minutes on a laptop-class CPU, before spending GPU weeks.

Each stage stores its result in `OUTPUT/stages/<stage>.json` (written atomically) together with a
fingerprint of its settings and inputs; a rerun skips stages whose marker matches, `--stage NAME`
reruns one stage alone, and an interrupted stage resumes from its last checkpoint (the pretraining
engine's `resume="auto"`, Detectron2's `resume_or_load(resume=True)`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from infomin.atomic import atomic_write_text
from infomin.configs import get_config_file

from infomin.pretrain.sweep_seeds import parse_seeds

from .scales import SCALES, StudyScale, resolve_scale

__all__ = ["STAGES", "INITS", "TASKS", "PAPER", "QUICK", "SCALES", "run_demo", "parse_seeds"]

INITS = ("infomin", "supervised", "random")
TASKS = ("voc", "coco")
# the demo scale's packaged config names (infomin.configs); other scales name theirs in scales.py
PRETRAIN_CONFIGS = SCALES["demo"].pretrain
DETECTION_CONFIGS = SCALES["demo"].detection
STAGES = ("data", "pretrain-infomin", "pretrain-supervised", "convert",
          *(f"{task}-{init}" for task in TASKS for init in INITS), "report")

# `--quick` (the tests' run): the same pipeline with a handful of iterations everywhere.
QUICK = {"pretrain": list(SCALES["quick"].pretrain_opts), "detection": list(SCALES["quick"].detection_opts)}

# Published full-scale numbers beside which the demo's are shown; each names its public source.
# None: a figure we could not check against a public source, shown as not quoted with the reason.
PAPER = {
    "title": ("Published full-scale numbers, ResNet-50 pretrained on ImageNet. VOC: Faster R-CNN "
              "R50-C4, VOC07+12 -> VOC07 test, 24k iterations, mean of 5 trials; COCO: Mask R-CNN "
              "R50-FPN 1x, train2017 -> val2017, 200-epoch pretraining"),
    "voc": {"random": None, "supervised": (53.5, 81.3, 58.8), "infomin": None},
    "coco": {"random": (32.8, 29.9), "supervised": (39.7, 35.9), "infomin": (40.6, 36.7)},
    "sources": {
        "voc": "facebookresearch/moco detection/README.md (supervised IN-1M row)",
        "coco": ("HobbitLong/PyContrast pycontrast/detection/README.md, 'Results with ResNet-50 "
                 "(200 epochs pre-training)', Mask-RCNN FPN 1x rows"),
    },
    "not_quoted": {
        ("voc", "infomin"): "the InfoMin paper (arXiv:2005.10243) reports it; not checked against the paper",
        ("voc", "random"): "the MoCo paper (arXiv:1911.05722) reports it; not checked against the paper",
    },
}

logger = logging.getLogger("infomin.study")


# ----------------------------------------------------------------------------- small helpers

def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _config_chain_digest(path: Path) -> str:
    """Digest of a YAML config and every `_BASE_` it inherits from (edits there rerun the stage)."""
    import yaml

    parts, seen = [], set()
    while path and path not in seen:
        seen.add(path)
        text = path.read_text()
        parts.append(text)
        base = (yaml.safe_load(text) or {}).get("_BASE_")
        path = (path.parent / base).resolve() if base else None
    return _digest(parts)


@dataclass
class Context:
    """Settings of one demo run and the results of the stages done so far."""

    output: Path
    scale: StudyScale
    device: str
    seed: int
    results: dict = field(default_factory=dict)
    key: str = ""  # fingerprint of the stage now running
    fresh: bool = False  # the stage now running must not resume old state

    @property
    def quick(self) -> bool:
        return self.scale.name == "quick"

    def marker(self, stage: str) -> Path:
        return self.output / "stages" / f"{stage}.json"


# ----------------------------------------------------------------------------- stages

def stage_data(ctx: Context) -> dict:
    from infomin.datasets import generate

    data = generate(ctx.output / "data", seed=ctx.seed, scale=ctx.scale.data)
    return {"root": data.root, "manifest": _file_digest(Path(data.root) / "manifest.json")}


def workdir(ctx: Context, path: Path) -> Path:
    """A stage's folder, emptied first unless it holds an interrupted run of the same settings.

    Resuming is only safe from state made by the same fingerprint; anything else (other scale,
    seed, config, inputs, or a forced rerun) starts from scratch.
    """
    import shutil

    stamp = path / ".demo-stage-key"
    if path.exists() and (ctx.fresh or not stamp.is_file() or stamp.read_text() != ctx.key):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if not stamp.is_file():
        atomic_write_text(stamp, ctx.key)
    return path


def _pretrain_opts(ctx: Context, name: str) -> list:
    out_dir = workdir(ctx, ctx.output / "pretrain" / name)
    opts = ["OUTPUT_DIR", str(out_dir), "DATA.ROOT", str(Path(ctx.results["data"]["root"]) / "imagefolder"),
            "MODEL.DEVICE", ctx.device, "SEED", str(ctx.seed)]
    extra = list(ctx.scale.pretrain_opts)
    if name != "infomin" and "MODEL.QUEUE_SIZE" in extra:  # only InfoMin has a queue
        i = extra.index("MODEL.QUEUE_SIZE")
        del extra[i:i + 2]
    return opts + extra


def _pretrain(ctx: Context, name: str) -> dict:
    from infomin.pretrain.config import load_cfg
    from infomin.pretrain.engine import run_pretraining

    cfg = load_cfg(get_config_file(ctx.scale.pretrain[name]), _pretrain_opts(ctx, name))
    ckpt = run_pretraining(cfg, resume="auto")
    metrics = Path(cfg.OUTPUT_DIR) / "metrics.jsonl"
    knn = [r["knn_top1"] for r in _read_jsonl(metrics) if "knn_top1" in r]
    return {"checkpoint": str(ckpt), "metrics": str(metrics), "knn_top1": knn[-1] if knn else None}


def stage_pretrain_infomin(ctx: Context) -> dict:
    return _pretrain(ctx, "infomin")


def stage_pretrain_supervised(ctx: Context) -> dict:
    return _pretrain(ctx, "supervised")


def stage_convert(ctx: Context) -> dict:
    from infomin.convert import convert_checkpoint

    out = {}
    for name in ("infomin", "supervised"):
        dst = ctx.output / "weights" / f"{name}_R18.pkl"
        dst.parent.mkdir(parents=True, exist_ok=True)
        summary = convert_checkpoint(ctx.results[f"pretrain-{name}"]["checkpoint"], str(dst))
        out[name] = {"weights": str(dst), "digest": _file_digest(dst),
                     "tensors": len(getattr(summary, "renamed", {}) or {})}
    out["random"] = {"weights": "", "digest": None}
    return out


def _register_datasets(data_root: str) -> dict:
    """Register the built-in data under names unique to its folder; return task -> (train, test)."""
    from infomin.detection.datasets import register_coco_folder, register_voc_folder

    tag = _digest(data_root)[:8]
    root = Path(data_root)
    names = {
        "voc": (f"infomin_demo_{tag}_voc_trainval", f"infomin_demo_{tag}_voc_test"),
        "coco": (f"infomin_demo_{tag}_coco_train", f"infomin_demo_{tag}_coco_val"),
    }
    for split, name in zip(("trainval", "test"), names["voc"]):
        register_voc_folder(name, str(root / "VOC2007"), split, year=2007)
    for split, name in zip(("train2017", "val2017"), names["coco"]):
        register_coco_folder(name, str(root / "coco" / "annotations" / f"instances_{split}.json"),
                             str(root / "coco" / split))
    return names


def build_detection_cfg(ctx: Context, task: str, init: str):
    """The Detectron2 config of one fine-tuning run (also used by tests)."""
    from detectron2.config import get_cfg

    train, test = _register_datasets(ctx.results["data"]["root"])[task]
    cfg = get_cfg()
    cfg.merge_from_file(get_config_file(ctx.scale.detection[task]))
    opts = ["MODEL.WEIGHTS", ctx.results["convert"][init]["weights"], "MODEL.DEVICE", ctx.device,
            "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)",
            "OUTPUT_DIR", str(workdir(ctx, ctx.output / "detection" / f"{task}-{init}")),
            "SEED", str(ctx.seed), *ctx.scale.detection_opts]
    cfg.merge_from_list(opts)
    cfg.freeze()
    return cfg


@contextlib.contextmanager
def _detectron2_log_to(path: Path):
    """Send Detectron2's INFO log, and fvcore's checkpoint messages (the expected list of head
    weights a backbone-only file lacks), to a file; the terminal shows progress bars and the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s]: %(message)s"))
    logs = [logging.getLogger(name) for name in ("detectron2", "fvcore")]
    old = [(log.level, log.propagate) for log in logs]
    for log in logs:
        log.setLevel(logging.INFO)
        log.propagate = False
        log.addHandler(handler)
    try:
        yield
    finally:
        for log, (level, propagate) in zip(logs, old):
            log.removeHandler(handler)
            log.setLevel(level)
            log.propagate = propagate
        handler.close()


def _trainer_class():
    from detectron2.engine import HookBase, hooks
    from tqdm import tqdm

    from infomin.detection.trainer import Trainer

    class _Progress(HookBase):
        def __init__(self, desc):
            self.desc = desc
            self.bar = None

        def before_train(self):
            self.bar = tqdm(total=self.trainer.max_iter, initial=self.trainer.start_iter,
                            desc=self.desc, unit="it", dynamic_ncols=True)

        def after_step(self):
            self.bar.update(1)
            loss = self.trainer.storage.history("total_loss").latest() \
                if "total_loss" in self.trainer.storage.histories() else None
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}")

        def after_train(self):
            if self.bar is not None:
                self.bar.close()

    class DemoTrainer(Trainer):
        """The project's trainer; evaluation is run once by the demo after training."""

        progress_desc = "fine-tune"

        def build_hooks(self):
            kept = [h for h in super().build_hooks() if not isinstance(h, hooks.EvalHook)]
            kept.insert(len(kept) - 1, _Progress(self.progress_desc))  # writers stay last
            return kept

    return DemoTrainer


def _detect(ctx: Context, task: str, init: str) -> dict:
    cfg = build_detection_cfg(ctx, task, init)
    out = Path(cfg.OUTPUT_DIR)
    from detectron2.utils.env import seed_all_rng

    with _detectron2_log_to(out / "log.txt"):
        seed_all_rng(cfg.SEED)  # what default_setup does for Detectron2's tools
        Trainer = _trainer_class()
        Trainer.progress_desc = f"{task}-{init}"
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=True)  # continues an interrupted run, else loads WEIGHTS
        trainer.train()
        with open(out / "log.txt", "a") as log, contextlib.redirect_stdout(log):
            results = Trainer.test(cfg, trainer.model)  # the COCO backend prints its summary
    flat = {}
    for kind, values in results.items():  # "bbox", "segm"
        flat[kind] = {k: float(values[k]) for k in ("AP", "AP50", "AP75") if k in values}
    return {"results": flat, "metrics": str(out / "metrics.json")}


def _detection_stage(task, init):
    def run(ctx):
        return _detect(ctx, task, init)

    run.__name__ = f"stage_{task}_{init}"
    return run


def stage_report(ctx: Context) -> dict:
    from .report import write_report

    return write_report(ctx.output, ctx.results, PAPER, quick=ctx.quick,
                        scale=f"scale {ctx.scale.name} ({ctx.scale.about}), seed {ctx.seed}")


STAGE_FUNCS = {"data": stage_data, "pretrain-infomin": stage_pretrain_infomin,
               "pretrain-supervised": stage_pretrain_supervised, "convert": stage_convert,
               **{f"{t}-{i}": _detection_stage(t, i) for t in TASKS for i in INITS},
               "report": stage_report}
DEPENDS = {"data": (), "pretrain-infomin": ("data",), "pretrain-supervised": ("data",),
           "convert": ("pretrain-infomin", "pretrain-supervised"),
           **{f"{t}-{i}": ("data", "convert") for t in TASKS for i in INITS},
           "report": tuple(s for s in STAGES if s != "report")}


def _fingerprint(ctx: Context, stage: str) -> str:
    """What a stage's result depends on: scale, seed, device, its configs and its inputs."""
    inputs = [ctx.results[d] for d in DEPENDS[stage]]
    configs = []
    scale = ctx.scale
    if stage == "data":
        from infomin.datasets import builtin

        configs.append([builtin.GENERATOR_VERSION, builtin.SCALES[scale.data]])
    if scale.pretrain_opts or scale.detection_opts:
        configs.append([scale.pretrain_opts, scale.detection_opts])
    if stage.startswith("pretrain-"):
        configs.append(_config_chain_digest(Path(get_config_file(scale.pretrain[stage.split("-", 1)[1]]))))
    if stage.split("-")[0] in TASKS:
        configs.append(_config_chain_digest(Path(get_config_file(scale.detection[stage.split("-")[0]]))))
    return _digest(stage, scale.name, ctx.seed, ctx.device, configs, inputs)


def _load_marker(ctx: Context, stage: str) -> dict | None:
    try:
        return json.loads(ctx.marker(stage).read_text())
    except (OSError, ValueError):
        return None


def run_stage(ctx: Context, stage: str, force: bool = False) -> tuple[dict, bool]:
    """Run `stage` unless its marker matches; returns (result, reused)."""
    missing = [d for d in DEPENDS[stage] if d not in ctx.results]
    if missing:
        raise RuntimeError(
            f"stage {stage!r} needs the results of {missing}, which have not been run for "
            f"{ctx.output} with these settings; run the whole demo first (without --stage).")
    key = _fingerprint(ctx, stage)
    marker = _load_marker(ctx, stage)
    if not force and marker and marker.get("key") == key:
        return marker["result"], True
    start = time.time()
    ctx.key, ctx.fresh = key, force
    result = STAGE_FUNCS[stage](ctx)
    atomic_write_text(ctx.marker(stage), json.dumps(
        {"stage": stage, "key": key, "seconds": round(time.time() - start, 1), "result": result},
        indent=1))
    return result, False


def _reuse_marker(ctx: Context, name: str) -> None:
    marker = _load_marker(ctx, name)
    if marker and all(d in ctx.results for d in DEPENDS[name]) and marker.get("key") == _fingerprint(ctx, name):
        ctx.results[name] = marker["result"]


def _run_one(output: Path, scale: StudyScale, device: str, seed: int, stage: str | None) -> dict:
    """Run (or resume) every stage for one seed in `output`; `stage` reruns that one alone."""
    from tqdm import tqdm

    ctx = Context(output, scale, device, int(seed))
    ctx.output.mkdir(parents=True, exist_ok=True)
    if stage is not None:
        for name in STAGES[:STAGES.index(stage)]:  # earlier results, from their markers only
            _reuse_marker(ctx, name)
        ctx.results[stage], _ = run_stage(ctx, stage, force=True)
        for name in STAGES[STAGES.index(stage) + 1:]:  # later ones still valid (for a seeds summary)
            _reuse_marker(ctx, name)
        return ctx.results
    timings = {}
    with tqdm(STAGES, desc=f"InfoMin study (seed {seed})", unit="stage", dynamic_ncols=True) as bar:
        for name in bar:
            bar.set_postfix(stage=name)
            start = time.time()
            ctx.results[name], reused = run_stage(ctx, name)
            timings[name] = "cached" if reused else f"{time.time() - start:.0f}s"
    logger.info("seed %d stage times: %s", seed, timings)
    return ctx.results


def seed_folder(output, seed: int) -> Path:
    """Where one seed of a several-seed study keeps its stages (each cached on its own)."""
    return Path(output) / f"seed-{seed}"


def run_demo(output, *, quick=False, device="auto", seed=0, seeds=None, scale=None, stage=None,
             jobs=1) -> dict:
    """Run (or resume) the study; returns every stage's result. `stage` reruns one stage alone.

    One seed (the default) keeps its stages in `output` itself. Several seeds (`seeds=[0, 1, 2]`
    or the command line's "0,1,2")
    run the whole study once per seed in `output/seed-N/` (data, pretraining, fine-tuning; each
    seed cached like the stages are) and write `output/report.md` with each number as mean +- std
    over the seeds; the return value is then {"seeds": {seed: results}, "report": summary}.
    `jobs` > 1 runs that many seeds at once, each in its own process (see `_run_seeds_parallel`).
    """
    if stage is not None and stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are: {', '.join(STAGES)}")
    if quick and scale not in (None, "auto", "quick"):
        raise ValueError(f"--quick is --scale quick; it cannot be combined with --scale {scale}.")
    from infomin.device import resolve_device

    device = str(resolve_device(device, "--device"))
    study_scale = SCALES["quick"] if quick else resolve_scale(scale, device)
    if seeds is not None and not isinstance(seeds, str):
        seeds = ",".join(map(str, seeds))
    seeds = parse_seeds(seeds) if seeds is not None else [int(seed)]
    output = Path(output).resolve()
    if int(jobs) < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if len(seeds) == 1:
        return _run_one(output, study_scale, device, seeds[0], stage)
    if int(jobs) > 1:
        _run_seeds_parallel(output, study_scale, device, seeds, stage, int(jobs))
        per_seed = {s: _gather_one(seed_folder(output, s), study_scale, device, s, stage) for s in seeds}
    else:
        per_seed = {s: _run_one(seed_folder(output, s), study_scale, device, s, stage) for s in seeds}
    from .summary import write_summary

    summary = write_summary(output, per_seed, PAPER, scale=study_scale)
    return {"seeds": per_seed, "report": summary}


def _gather_one(output: Path, scale: StudyScale, device: str, seed: int, stage: str | None) -> dict:
    """One seed's results from the markers its own process wrote; nothing is run here. Every stage
    must be there (only a `--stage` rerun may leave later ones out, as it does in one process)."""
    ctx = Context(output, scale, device, int(seed))
    for name in STAGES:
        _reuse_marker(ctx, name)
    missing = [name for name in STAGES if name not in ctx.results]
    if stage is None and missing:
        raise RuntimeError(f"seed {seed}'s process finished but left stages {missing} without a result for "
                           f"these settings in {output}; see {output / 'demo.log'}")
    return ctx.results


def _run_seeds_parallel(output: Path, scale: StudyScale, device: str, seeds: list, stage, jobs: int) -> None:
    """Run up to `jobs` seeds at once, each as `infomin-demo --seed N --output OUTPUT/seed-N`.

    Why: on one GPU a seed's small models leave most of the device and of the CPU cores idle, so
    three seeds side by side take little longer than one. Each child runs exactly the single-seed
    study into the folder the sequential path uses, with the same fingerprints, so the caller then
    finds every stage cached and only gathers the results. Each child's output goes to
    OUTPUT/seed-N/demo.log; a child that fails stops the study with its log's name and tail.
    """
    import subprocess
    import sys

    import os

    # Each child gets its share of the cores for torch's threads (unless the user chose a number), so
    # N processes do not each start one thread per core. On a 16-core H200 node, three seeds side by
    # side without this ran Mask R-CNN at 0.75 s/iter against 0.12 s/iter alone (measured);
    # oversubscribed threads are the likely cause (not measured apart).
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // min(jobs, len(seeds)))))
    pending, running, failed = list(seeds), {}, []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                s = pending.pop(0)
                folder = seed_folder(output, s)
                folder.mkdir(parents=True, exist_ok=True)
                log = open(folder / "demo.log", "ab")
                # -P: import the installed package, never a checkout's infomin/ in the working directory
                cmd = [sys.executable, "-P", "-m", "infomin.study.cli.demo", "--output", str(folder), "--seed", str(s),
                       "--scale", scale.name, "--device", device, *(["--stage", stage] if stage else [])]
                print(f"seed {s}: running in its own process, log {folder / 'demo.log'}", flush=True)
                running[s] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
            time.sleep(1.0)
            for s, (proc, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[s]
                print(f"seed {s}: {'done' if proc.returncode == 0 else f'failed (exit {proc.returncode})'}", flush=True)
                if proc.returncode != 0:
                    failed.append(s)
    finally:
        for proc, log in running.values():  # interrupted: stop the children, keep their checkpoints
            proc.terminate()
            with contextlib.suppress(Exception):
                proc.wait(timeout=60)
            log.close()
    if failed:
        tails = []
        for s in failed:
            path = seed_folder(output, s) / "demo.log"
            lines = path.read_text(errors="replace").splitlines()[-5:]
            tails.append(f"seed {s} ({path}):\n    " + "\n    ".join(lines))
        raise RuntimeError("seeds " + ", ".join(map(str, failed)) + " failed; the end of each log:\n"
                           + "\n".join(tails))


def _read_jsonl(path: Path) -> list:
    records = []
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records
