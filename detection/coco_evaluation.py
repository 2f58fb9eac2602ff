"""COCO evaluation backend: Detectron2's fast evaluator, faster-coco-eval, or pycocotools.

Detectron2's ``COCOEvaluator(use_fast_impl=True)`` needs the C++ extension ``detectron2._C``;
without it (our pure-Python Detectron2) every evaluation falls back to pycocotools' Python
``COCOeval``, which takes tens of seconds on COCO val. faster-coco-eval
(https://github.com/MiXaiLL76/faster_coco_eval, pip wheels, no compiler needed) is a C++ port of
the same algorithm giving the same 12 stats; `FasterCOCOEvaluator` runs it inside Detectron2's
own evaluator, so everything else (category id mapping, the results json, per-category AP,
``max_dets_per_image``, keypoint sigmas) stays Detectron2's.
"""
import contextlib
import functools
import logging

from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation import coco_evaluation as d2_coco_evaluation

from .compiled_ops import has_compiled_ops

__all__ = ["coco_eval_backend", "FasterCOCOEvaluator", "FasterCOCOeval", "build_coco_evaluator"]
logger = logging.getLogger(__name__)

BACKENDS = ("detectron2", "faster-coco-eval", "pycocotools")


def _faster_coco_eval_class():
    """faster-coco-eval's ``COCOeval_faster``, or None when the package is not installed."""
    try:
        from faster_coco_eval.core import COCOeval_faster
    except ImportError:
        return None
    return COCOeval_faster


@functools.lru_cache(maxsize=None)
def coco_eval_backend():
    """Which implementation computes COCO AP here; logged once per process.

    ``"detectron2"`` when ``detectron2._C`` is built (Detectron2's own ``COCOeval_opt``), else
    ``"faster-coco-eval"`` when that package imports, else ``"pycocotools"``.
    """
    if has_compiled_ops():
        backend, why = "detectron2", "detectron2._C is built: Detectron2's own COCOeval_opt"
    elif _faster_coco_eval_class() is not None:
        backend, why = "faster-coco-eval", "detectron2._C is not built: faster-coco-eval's C++ COCOeval"
    else:
        backend, why = "pycocotools", (
            "detectron2._C is not built and faster-coco-eval is not installed: pycocotools' "
            "Python COCOeval (slow on large sets; 'pip install faster-coco-eval' to speed it up)")
    logger.info("COCO evaluation backend: %s (%s)", backend, why)
    return backend


def FasterCOCOeval(cocoGt=None, cocoDt=None, iouType="segm"):
    """faster-coco-eval's evaluator behind pycocotools' ``COCOeval(cocoGt, cocoDt, iouType)``.

    It prints its summary to stdout like pycocotools does, so logs look the same either way.
    """
    cls = _faster_coco_eval_class()
    if cls is None:
        raise ImportError("faster-coco-eval is not installed: pip install 'faster-coco-eval>=1.8.0'")
    return cls(cocoGt, cocoDt, iouType, print_function=print)


@contextlib.contextmanager
def _fast_impl_is(evaluator_class):
    """Make Detectron2's ``use_fast_impl`` branch construct ``evaluator_class`` for a while.

    Detectron2 v0.6 chooses between the module's ``COCOeval_opt`` and ``COCOeval`` inside
    ``_evaluate_predictions_on_coco`` and has no argument for another class; swapping the name
    for the duration of one evaluation reuses that function unchanged.
    """
    saved = d2_coco_evaluation.COCOeval_opt
    d2_coco_evaluation.COCOeval_opt = evaluator_class
    try:
        yield
    finally:
        d2_coco_evaluation.COCOeval_opt = saved


class FasterCOCOEvaluator(COCOEvaluator):
    """Detectron2's `COCOEvaluator` computing AP with faster-coco-eval (no ``detectron2._C``).

    Takes `COCOEvaluator`'s arguments; ``use_fast_impl=False`` keeps pycocotools.
    """

    def __init__(self, dataset_name, tasks=None, distributed=True, output_dir=None, *,
                 use_fast_impl=True, **kwargs):
        # Detectron2 would log "Fast COCO eval is not built. Falling back" for True: ask it for
        # the official path, then switch its fast branch on with our class.
        super().__init__(dataset_name, tasks, distributed, output_dir, use_fast_impl=False, **kwargs)
        if use_fast_impl and not hasattr(d2_coco_evaluation, "COCOeval_opt"):
            self._logger.warning(
                "this Detectron2 has no coco_evaluation.COCOeval_opt to replace: evaluating "
                "with pycocotools")
            use_fast_impl = False
        if use_fast_impl and _faster_coco_eval_class() is None:
            raise ImportError("FasterCOCOEvaluator needs faster-coco-eval: pip install 'faster-coco-eval>=1.8.0'")
        self._use_fast_impl = use_fast_impl

    def _eval_predictions(self, predictions, img_ids=None):
        if not self._use_fast_impl:
            return super()._eval_predictions(predictions, img_ids)
        with _fast_impl_is(FasterCOCOeval):
            return super()._eval_predictions(predictions, img_ids)


def build_coco_evaluator(dataset_name, **kwargs):
    """The COCO evaluator for `coco_eval_backend` (keyword arguments go to `COCOEvaluator`)."""
    backend = coco_eval_backend()
    if backend == "faster-coco-eval":
        return FasterCOCOEvaluator(dataset_name, **kwargs)
    return COCOEvaluator(dataset_name, use_fast_impl=backend == "detectron2", **kwargs)
