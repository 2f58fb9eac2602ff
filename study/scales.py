"""The study's scales: which built-in data, which configs and which overrides each stage gets.

Why: one pipeline serves a smoke test (seconds), the default demo (one seed in under 15 minutes on
a 2-core CPU), the study (three seeds in about an hour on that CPU) and a one-GPU run (three
seeds in about 12 minutes on one H200). Each scale names a `infomin.datasets.builtin.SCALES`
entry and packaged configs (`infomin.configs`, configs/study/), so a stage's fingerprint follows
its config files.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StudyScale", "SCALES", "resolve_scale"]


@dataclass(frozen=True)
class StudyScale:
    name: str
    data: str  # key of infomin.datasets.builtin.SCALES
    pretrain: dict  # init -> packaged config name
    detection: dict  # task -> packaged config name
    pretrain_opts: tuple = ()  # KEY VALUE overrides for both pretrainings (quick only)
    detection_opts: tuple = ()
    about: str = ""


_DEMO_PRETRAIN = {"infomin": "study/pretrain_infomin_R18.yaml", "supervised": "study/pretrain_supervised_R18.yaml"}
_DEMO_DETECTION = {"voc": "study/voc_faster_rcnn_R18_FPN.yaml", "coco": "study/coco_mask_rcnn_R18_FPN.yaml"}

# `quick` (the tests' run): the demo's configs with a handful of iterations everywhere.
_QUICK_PRETRAIN = ("SOLVER.EPOCHS", "1", "SOLVER.ITERS_PER_EPOCH", "3", "SOLVER.IMS_PER_BATCH", "16",
                   "MODEL.QUEUE_SIZE", "64", "SOLVER.WARMUP_EPOCHS", "0", "LOG.PERIOD", "1",
                   "KNN.PERIOD", "1", "CHECKPOINT.PERIOD", "1")
_QUICK_DETECTION = ("SOLVER.MAX_ITER", "3", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "1",
                    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.CHECKPOINT_PERIOD", "1000",
                    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "50", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32")

def _named(suffix):
    return {k: v.replace(".yaml", f"{suffix}.yaml") for k, v in _DEMO_PRETRAIN.items()}


def _named_det(suffix):
    return {k: v.replace(".yaml", f"{suffix}.yaml") for k, v in _DEMO_DETECTION.items()}


SCALES = {
    "quick": StudyScale("quick", "quick", _DEMO_PRETRAIN, _DEMO_DETECTION, _QUICK_PRETRAIN, _QUICK_DETECTION,
                        about="a few iterations per stage: a smoke test, the numbers mean nothing"),
    "demo": StudyScale("demo", "full", _DEMO_PRETRAIN, _DEMO_DETECTION,
                       about="the default demo: one seed in under 15 minutes on a 2-core CPU"),
    "study": StudyScale("study", "study", _named("_study"), _named_det("_study"),
                        about="4000 pretraining images at 32 px, detectors at batch 8 for 400 iterations in "
                              "mixed precision: three seeds in under an hour on a 2-core CPU"),
    "gpu": StudyScale("gpu", "study", _named("_gpu"), _named_det("_gpu"),
                      about="4000 pretraining images at 64 px, GPU batches and schedules: three seeds "
                            "side by side (--jobs 3) in about 12 minutes on one H200"),
}


def resolve_scale(name: str | None, device: str) -> StudyScale:
    """`None`/"auto": the GPU scale on a CUDA device (when defined), else the demo."""
    if name in (None, "auto"):
        name = "gpu" if device.startswith("cuda") and "gpu" in SCALES else "demo"
    if name not in SCALES:
        raise ValueError(f"unknown --scale {name!r}; choose one of {', '.join(SCALES)} or auto")
    return SCALES[name]
