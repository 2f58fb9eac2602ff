"""The Detectron2 extension: the C4 ExtraNorm head, dataset registration, trainer and train_net.

Importing this package registers ``Res5ROIHeadsExtraNorm`` in Detectron2's ROI_HEADS registry, so
the C4 configs in ``configs/detection/`` build, and the ``infomin://NAME`` model-zoo path handler on
Detectron2's PathManager, so ``MODEL.WEIGHTS infomin://InfoMin_800`` works in any config.
"""
import warnings

# fvcore.nn (imported by detectron2.layers) and detectron2.modeling.box_regression run
# torch.jit.script at import, which PyTorch >= 2.10 answers with a FutureWarning at every start;
# nothing a user can act on, so that one warning is silenced for these two imports only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                            category=FutureWarning)
    import fvcore.nn  # noqa: F401
    import detectron2.modeling  # noqa: F401

from . import zoo_handler  # noqa: F401  (registers infomin://)
from .coco_evaluation import FasterCOCOEvaluator, coco_eval_backend
from .compiled_ops import CompiledOpsRequired, check_compiled_ops, has_compiled_ops
from .datasets import builtin_root, register_coco_folder, register_voc_folder, voc_class_names
from .roi_heads import Res5ROIHeadsExtraNorm
from .trainer import Trainer, build_evaluator

__all__ = [
    "Res5ROIHeadsExtraNorm", "Trainer", "build_evaluator", "register_coco_folder",
    "register_voc_folder", "voc_class_names", "builtin_root", "CompiledOpsRequired",
    "check_compiled_ops", "has_compiled_ops", "FasterCOCOEvaluator", "coco_eval_backend",
]
