"""What `infomin-train-net` (`infomin.detection.cli.train_net`) does: fine-tune and evaluate
Detectron2 detectors with our `Trainer`.

`setup_cfg` reads the config (Detectron2's, with unknown-key suggestions); `check_cfg` refuses,
in the launching process before any worker starts, what would only fail later: missing weights,
features needing ``detectron2._C``, AMP on a device with no mixed precision, unknown datasets, weights that need the
network or do not fit the model, a finished run in OUTPUT_DIR (`preflight`); `run` is one worker of
Detectron2's `launch`. They take the parsed command line (`args`) of that command.
"""
import copy
import logging
import os
import sys
import warnings

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from infomin.configs import resolve_config_file
from infomin import checkpoint_format

from .compiled_ops import check_compiled_ops
from .config import get_cfg
from .datasets import register_coco_folder, register_voc_folder
from .preflight import (check_coco_classes, check_detection_config, check_output_dir,
                        check_weights_fit, resolve_weights)
from .protocol import batch_warning
from .trainer import Trainer, check_amp, evaluator_type

__all__ = ["setup_cfg", "check_cfg", "check_devices", "check_dataset", "register_cli_datasets",
           "warn_protocol_batch", "run", "WEIGHTS_PLACEHOLDER"]

# Configs for converted self-supervised backbones start MODEL.WEIGHTS with this word: there is no
# sensible default file, and silently training from random weights would waste a GPU-week.
WEIGHTS_PLACEHOLDER = "REQUIRED"

def register_cli_datasets(args):
    for name, json_file, image_root in args.coco_dataset:
        register_coco_folder(name, json_file, image_root)
    for name, dirname, split, year in args.voc_dataset:
        register_voc_folder(name, dirname, split, year)


def setup_cfg(args):
    """Frozen config from ``--config-file`` and the trailing overrides."""
    if not args.config_file:
        raise ValueError("--config-file is required (e.g. detection/coco/mask_rcnn_R50_FPN_1x_coco_infomin.yaml)")
    cfg = get_cfg()
    path = resolve_config_file(args.config_file)
    check_detection_config(path, args.config_file)
    cfg.merge_from_file(path)
    try:
        cfg.merge_from_list(args.opts or [])
    except (KeyError, AssertionError, ValueError) as exc:
        raise ValueError(
            f"bad KEY VALUE override {args.opts}: {exc}. Overrides come in pairs of an existing "
            "config key and a value, e.g. MODEL.WEIGHTS out.pkl SOLVER.IMS_PER_BATCH 8."
        ) from exc
    cfg.freeze()
    return cfg


def check_devices(cfg, args):
    """CUDA where the config or the process count needs it (Detectron2 0.6 launches with NCCL)."""
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if str(cfg.MODEL.DEVICE).startswith("cuda") and not available:
        raise ValueError(f"MODEL.DEVICE is {cfg.MODEL.DEVICE!r} but no CUDA GPU is available; "
                         "add 'MODEL.DEVICE cpu' to run on the CPU.")
    if args.num_gpus * args.num_machines > 1 and args.num_gpus > available:
        raise ValueError(f"--num-gpus {args.num_gpus} but this machine has {available} CUDA GPU(s): "
                         "multi-process runs need one GPU per process.")


def check_dataset(name):
    """A registered name whose files exist (builtin names point under $DETECTRON2_DATASETS)."""
    if name not in DatasetCatalog.list():
        raise ValueError(
            f"dataset {name!r} is not registered. Builtin coco_*/voc_* names resolve under "
            f"$DETECTRON2_DATASETS (now {os.getenv('DETECTRON2_DATASETS', 'datasets')!r}); "
            "register others with --coco-dataset NAME JSON IMAGE_ROOT or "
            "--voc-dataset NAME DIRNAME SPLIT YEAR.")
    meta = MetadataCatalog.get(name)
    for key in ("json_file", "image_root", "dirname"):
        path = meta.get(key)
        if path and "://" not in str(path) and not os.path.exists(path):
            raise FileNotFoundError(
                f"dataset {name!r} expects {path}, which does not exist. For builtin names, set "
                "DETECTRON2_DATASETS to the folder holding coco/ and VOC20xx/ (now "
                f"{os.getenv('DETECTRON2_DATASETS', 'datasets')!r}, relative to {os.getcwd()}).")


def _is_pretraining_checkpoint(path):
    """True for a file that holds un-converted SSL weights (our pretraining format, MoCo, ...)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip-format torch file (e.g. a Detectron2 .pkl): nothing to say
        return False
    if not isinstance(obj, dict):
        return False
    if checkpoint_format.is_pretraining_checkpoint(obj):
        return True
    model = obj.get("model", obj.get("state_dict"))
    if not isinstance(model, dict):
        return False
    # torchvision ResNet names under the SSL repositories' prefixes; Detectron2's own checkpoints
    # use backbone.(bottom_up.)stem/res* and are not matched
    prefixes = ("module.", "encoder.", "encoder_q.", "backbone.layer", "backbone.conv1", "layer1.", "conv1.")
    return any(str(key).startswith(prefixes) for key in model)


def warn_protocol_batch(cfg, args, prog="infomin-train-net", file=None):
    """Warn once (in the launching process) when a published protocol config trains with a global
    batch other than the protocol's 16; returns the warning or None."""
    if args.eval_only:
        return None
    message = batch_warning(cfg, resolve_config_file(args.config_file),
                            args.num_gpus * args.num_machines, name=args.config_file)
    if message:
        print(f"{prog}: warning: {message}", file=file or sys.stderr)
    return message


def _will_resume(cfg, resume):
    return resume and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"))


def check_cfg(cfg, args):
    """Everything that can be refused before a worker starts, with what to do instead."""
    check_compiled_ops(cfg)
    check_amp(cfg)
    check_devices(cfg, args)
    needed = list(cfg.DATASETS.TEST) if args.eval_only else list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    for name in needed:  # --eval-only reads no training set
        check_dataset(name)
        check_coco_classes(name)
        classes = MetadataCatalog.get(name).get("thing_classes")  # known before loading for VOC
        if classes is not None and len(classes) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
            raise ValueError(
                f"dataset {name!r} has {len(classes)} classes but MODEL.ROI_HEADS.NUM_CLASSES is "
                f"{cfg.MODEL.ROI_HEADS.NUM_CLASSES}; add 'MODEL.ROI_HEADS.NUM_CLASSES {len(classes)}'.")
    for name in cfg.DATASETS.TEST:
        evaluator_type(name)  # refuses datasets without a known evaluator
    check_output_dir(cfg, args)
    weights = cfg.MODEL.WEIGHTS
    if _will_resume(cfg, args.resume):
        return
    if weights.startswith(WEIGHTS_PLACEHOLDER):
        raise ValueError(
            f"{args.config_file} needs backbone weights: convert your pretrained checkpoint with "
            "'infomin-convert-pretrained CKPT OUT.pkl' and add 'MODEL.WEIGHTS OUT.pkl' to the "
            "command (or 'MODEL.WEIGHTS \"\"' to train from random initialisation).")
    if weights and "://" not in weights:
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"MODEL.WEIGHTS {weights!r} does not exist")
        if _is_pretraining_checkpoint(weights):
            raise ValueError(
                f"MODEL.WEIGHTS {weights!r} is a pretraining checkpoint, not Detectron2 weights: "
                "Detectron2 would match none of its keys and train from random weights. Convert "
                "it first: infomin-convert-pretrained "
                f"{weights} {os.path.splitext(weights)[0]}.pkl")
    if weights:
        check_weights_fit(cfg, resolve_weights(weights), weights)


def _with_config_path(args):
    """`args` with --config-file as a file path: Detectron2's default_setup opens it to log and
    copy it, and a packaged name (detection/coco/...) is not a path."""
    resolved = copy.copy(args)
    resolved.config_file = resolve_config_file(args.config_file)
    return resolved


# What default_setup and DefaultTrainer log at startup that only matters when reading a run's
# record: OUTPUT_DIR/log.txt keeps them, the terminal shows them with --verbose.
_RECORD_ONLY = ("Environment info:", "Command line arguments:", "Contents of args.config_file",
                "Running with full config:", "Model:\n")


def _record_only(record):
    return not str(record.msg).startswith(_RECORD_ONLY)


def concise_terminal(cfg, verbose=False):
    """Set up Detectron2's loggers (as `default_setup` does, which then reuses them) with the
    environment dump, config and model printouts kept out of the terminal unless `verbose`."""
    if not verbose:
        # collect_env_info (default_setup's environment dump) imports cpp_extension, which logs
        # "No CUDA runtime is found" on every CPU-only machine; import it once, quietly
        cpp_logger = logging.getLogger("torch.utils.cpp_extension")
        level = cpp_logger.level
        cpp_logger.setLevel(logging.ERROR)
        try:
            import torch.utils.cpp_extension  # noqa: F401
        finally:
            cpp_logger.setLevel(level)
    rank = comm.get_rank()
    loggers = [setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank, name="fvcore"),
               setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank)]  # the calls default_setup makes
    for logger in loggers:
        for handler in logger.handlers:
            if getattr(handler, "stream", None) is not sys.stdout:
                continue  # the log.txt handler keeps everything
            if verbose:
                handler.removeFilter(_record_only)
            elif _record_only not in handler.filters:
                handler.addFilter(_record_only)


def run(args):
    """One worker: register datasets, set up logging/output, then evaluate or train.

    Returns the evaluation results (a dict of dicts) with ``--eval-only``; after training, the
    trainer (its ``storage`` holds the logged losses and metrics).
    """
    register_cli_datasets(args)
    cfg = setup_cfg(args)
    concise_terminal(cfg, getattr(args, "verbose", False))
    default_setup(cfg, _with_config_path(args))
    with warnings.catch_warnings():
        # Detectron2 0.6's anchor generator calls torch.meshgrid without `indexing` (its default
        # "ij" is what it means); PyTorch warns about that at every run
        warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release",
                                category=UserWarning)
        return _run(cfg, args)


def _run(cfg, args):
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    return trainer
