"""Our Detectron2 trainer: evaluator picked by dataset, config checks before any work is done.

Everything else is `DefaultTrainer` as is: PreciseBN (``TEST.PRECISE_BN``) runs before each
evaluation and at the end when the model has BatchNorm layers, and ``SOLVER.AMP.ENABLED`` on
CUDA switches to Detectron2's `AMPTrainer` (float16 with a gradient scaler). On the CPU, where
AMPTrainer cannot run (it asserts CUDA after the model and data are built), the same key trains
with bfloat16 autocast instead, the CPU's mixed precision (see `autocast_training`): about 1.5x
faster per Faster/Mask R-CNN R18-FPN iteration on a CPU with AVX512-BF16 (`benchmarks/
bench_detector_amp.py`). Evaluation stays in float32 either way.
"""
import functools
import os

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import PascalVOCDetectionEvaluator

from . import roi_heads  # noqa: F401  (registers Res5ROIHeadsExtraNorm)
from .coco_evaluation import build_coco_evaluator
from .compiled_ops import check_compiled_ops

__all__ = ["Trainer", "build_evaluator", "evaluator_type", "check_amp", "coco_tasks", "autocast_training",
           "cpu_amp"]
EVALUATOR_TYPES = ("coco", "pascal_voc")


def cpu_amp(cfg) -> bool:
    """True when ``SOLVER.AMP.ENABLED`` asks for mixed precision on the CPU (bfloat16 autocast)."""
    return bool(cfg.SOLVER.AMP.ENABLED) and str(cfg.MODEL.DEVICE) == "cpu"


def check_amp(cfg):
    """Refuse ``SOLVER.AMP.ENABLED`` on a device with no mixed precision we can run: CUDA asked
    for where there is none, or a device that is neither CUDA nor the CPU."""
    if not cfg.SOLVER.AMP.ENABLED or cpu_amp(cfg):
        return
    device = str(cfg.MODEL.DEVICE)
    if not device.startswith("cuda") or not torch.cuda.is_available():
        where = "no CUDA device is available" if device.startswith("cuda") else f"MODEL.DEVICE is {device!r}"
        raise ValueError(
            f"SOLVER.AMP.ENABLED is True but {where}: mixed precision runs on a CUDA GPU (Detectron2's "
            "AMPTrainer, float16) or with 'MODEL.DEVICE cpu' (bfloat16 autocast). Add "
            "'SOLVER.AMP.ENABLED False' to train in float32."
        )


def autocast_training(model, device_type: str, dtype: torch.dtype):
    """Run `model`'s forward under `torch.autocast(device_type, dtype)` while it is in training mode.

    Wrapping the forward (not the whole step) keeps the backward pass and the optimizer outside
    autocast, as PyTorch's AMP recipe asks, and leaves the state dict, the checkpointer and
    evaluation (eval mode: float32) untouched. bfloat16 has float32's range, so no loss scaling.
    """
    forward = model.forward

    @functools.wraps(forward)
    def autocast_forward(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype, enabled=model.training):
            return forward(*args, **kwargs)

    model.forward = autocast_forward
    return model


def coco_tasks(cfg):
    """COCO evaluation tasks the model of ``cfg`` predicts."""
    tasks = ["bbox"]
    if cfg.MODEL.MASK_ON:
        tasks.append("segm")
    if cfg.MODEL.KEYPOINT_ON:
        tasks.append("keypoints")
    return tuple(tasks)


def evaluator_type(dataset_name):
    """``"coco"`` or ``"pascal_voc"``: which evaluator a registered dataset gets."""
    kind = MetadataCatalog.get(dataset_name).get("evaluator_type")
    if kind not in EVALUATOR_TYPES:
        raise ValueError(
            f"no evaluator for dataset {dataset_name!r} (metadata evaluator_type={kind!r}): "
            "register test sets with infomin.detection.register_coco_folder (COCO json) or "
            "register_voc_folder (VOC folder), or use a builtin coco_*/voc_* name.")
    return kind


def build_evaluator(cfg, dataset_name, output_folder=None):
    """COCO or VOC evaluator for ``dataset_name``, by its metadata ``evaluator_type``.

    COCO uses Detectron2's fast evaluator when ``detectron2._C`` is built, else faster-coco-eval
    (same stats as pycocotools, many times faster), else pycocotools: see `coco_eval_backend`.
    """
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    if evaluator_type(dataset_name) == "coco":
        return build_coco_evaluator(dataset_name, tasks=coco_tasks(cfg), output_dir=output_folder)
    return VOCDetectionEvaluator(dataset_name)


class VOCDetectionEvaluator(PascalVOCDetectionEvaluator):
    """Detectron2's VOC evaluator without its divide warning: a class with no ground truth in the
    test set divides by zero positives (`pascal_voc_evaluation.py` "invalid value encountered in
    divide"); its AP is still reported as Detectron2 computes it."""

    def evaluate(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            return super().evaluate()


class Trainer(DefaultTrainer):
    """`DefaultTrainer` with COCO/VOC evaluators and up-front config checks."""

    def __init__(self, cfg):
        check_amp(cfg)
        check_compiled_ops(cfg)
        if not cpu_amp(cfg):
            super().__init__(cfg)
            return
        # DefaultTrainer would pick AMPTrainer (CUDA only) for SOLVER.AMP.ENABLED: build the plain
        # trainer, then make the model's training forward bfloat16 autocast and restore the key.
        plain = cfg.clone()
        plain.defrost()
        plain.SOLVER.AMP.ENABLED = False
        super().__init__(plain)  # self.cfg: `plain`, or an unfrozen rescaled copy of it
        autocast_training(self.model, "cpu", torch.bfloat16)
        self.cfg.SOLVER.AMP.ENABLED = True
        if cfg.is_frozen():
            self.cfg.freeze()

    @classmethod
    def build_model(cls, cfg):
        check_compiled_ops(cfg)
        return super().build_model(cfg)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_evaluator(cfg, dataset_name, output_folder)
