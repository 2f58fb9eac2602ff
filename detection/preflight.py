"""Checks `infomin-train-net` runs in the launching process, before any worker starts, for mistakes
that would otherwise cost a run: weights that do not fit the model (Detectron2 would skip every
misshapen tensor with a warning and train the backbone from random init), weights that need the
network, a finished run about to be overwritten, a pretraining config, a COCO tree whose classes
are not the ones its name promises. Each raises ValueError/FileNotFoundError with one message
saying what was wrong and what to do; the command prints it as ``PROG: error: ...``.
"""
import contextlib
import json
import logging
import os
import warnings
from urllib.parse import urlparse

import torch
import yaml
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.file_io import PathManager

from infomin.convert import ConversionError
from infomin.convert.inspect import detectron2_arch, shape_settings
from infomin.convert.mapping import backbone_part

__all__ = ["check_output_dir", "resolve_weights", "check_weights_fit", "check_detection_config",
           "check_coco_classes", "FINISHED_RUN_FILES"]

# What Detectron2 leaves in OUTPUT_DIR once a run has saved a checkpoint (last_checkpoint names
# the newest one; model_final.pth is written at the end).
FINISHED_RUN_FILES = ("last_checkpoint", "model_final.pth")


def check_output_dir(cfg, args):
    """Refuse to train from scratch into an OUTPUT_DIR that holds a run's checkpoints (Detectron2
    would overwrite them) unless --resume continues it or --overwrite says to start over."""
    if args.eval_only or args.resume or getattr(args, "overwrite", False):
        return
    found = [name for name in FINISHED_RUN_FILES if os.path.isfile(os.path.join(cfg.OUTPUT_DIR, name))]
    if found:
        raise ValueError(
            f"OUTPUT_DIR {cfg.OUTPUT_DIR} already holds a run ({', '.join(found)}); training again "
            "would overwrite it. Add --resume to continue that run, set another 'OUTPUT_DIR DIR', "
            "or add --overwrite to start over in the same folder.")


# ------------------------------------------------------------------------------- weights

def _detectron2_url(path):
    """The https URL Detectron2's PathManager fetches for a detectron2:// path, or None."""
    from detectron2.utils.file_io import Detectron2Handler

    if path.startswith(Detectron2Handler.PREFIX):
        return Detectron2Handler.S3_DETECTRON2_PREFIX + path[len(Detectron2Handler.PREFIX):]
    if path.startswith(("http://", "https://")):
        return path
    return None


def iopath_cache_path(url):
    """Where iopath's HTTPURLHandler (behind Detectron2's PathManager) caches `url`, and so where
    a file fetched by hand is picked up: $FVCORE_CACHE (default ~/.torch/iopath_cache) + the
    URL's path."""
    cache = os.path.expanduser(os.getenv("FVCORE_CACHE", "~/.torch/iopath_cache"))
    parsed = urlparse(url)
    return os.path.join(cache, os.path.dirname(parsed.path.lstrip("/")), url.split("/")[-1])


def resolve_weights(weights):
    """Local path of MODEL.WEIGHTS, fetching what needs the network now (in the launching
    process, before a model is built); refuses with the URL, the file and the cache path."""
    if not weights or "://" not in weights:
        return weights
    from infomin.zoo import ZooError, UnknownModelError

    download_log = logging.getLogger("iopath.common.download")  # logs the failure we report
    level = download_log.level
    download_log.setLevel(logging.CRITICAL)
    try:
        return PathManager.get_local_path(weights)
    except UnknownModelError as exc:
        raise ValueError(f"MODEL.WEIGHTS {weights}: {exc}") from None
    except ZooError as exc:
        raise ValueError(f"MODEL.WEIGHTS {weights} could not be fetched: {exc}") from None
    except OSError as exc:  # urllib's URLError/HTTPError, timeouts, a read-only cache
        url = _detectron2_url(weights)
        if url is None:
            raise ValueError(f"MODEL.WEIGHTS {weights} could not be opened: {exc}") from None
        cached = iopath_cache_path(url)
        reason = getattr(exc, "reason", None) or exc
        raise ValueError(
            f"MODEL.WEIGHTS {weights} could not be downloaded from {url} ({reason}). Fetch "
            f"{url.split('/')[-1]} by other means and put it at exactly {cached} (the cache "
            "Detectron2 reads, $FVCORE_CACHE or ~/.torch/iopath_cache), or give a local file as "
            "MODEL.WEIGHTS.") from None
    finally:
        download_log.setLevel(level)


def _is_backbone_key(key):
    """Model keys of the ResNet trunk: backbone.(bottom_up.)stem/res*, and the C4 res5 in roi_heads."""
    part = backbone_part(key)
    return part is not None and not key.endswith("num_batches_tracked") and (
        key.startswith("backbone.") or key.startswith("roi_heads.res5."))


@contextlib.contextmanager
def _quiet():
    """Silence Detectron2/fvcore's per-tensor load logging and torch's meta-copy warnings."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _shape(value):
    return list(value.shape) if hasattr(value, "shape") else None


def check_weights_fit(cfg, local_path, weights=None):
    """Refuse weights whose backbone tensors are missing or misshapen for the model `cfg` builds.

    The model is built on the meta device (no memory, no init) and the file is matched against it
    exactly as DetectionCheckpointer matches it (name heuristics for .pkl files included); heads
    may be missing, backbone tensors may not. The message names the settings the weights need,
    read from their tensor shapes.
    """
    weights = weights or local_path
    meta_cfg = cfg.clone()
    meta_cfg.defrost()
    meta_cfg.MODEL.DEVICE = "meta"
    with _quiet(), torch.device("meta"):
        model = build_model(meta_cfg)
    checkpointer = DetectionCheckpointer(model)
    with _quiet():
        try:
            checkpoint = checkpointer._load_file(local_path)
        except Exception as exc:  # pickle/zip/torch errors of a truncated or foreign file
            raise ValueError(
                f"MODEL.WEIGHTS {weights} is not a checkpoint Detectron2 can read "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else 'no detail'}); "
                "give a .pkl written by infomin-convert-pretrained or a Detectron2 .pth.") from None
        if not isinstance(checkpoint.get("model"), dict):
            raise ValueError(f"MODEL.WEIGHTS {weights} holds no model weights; give a .pkl written "
                             "by infomin-convert-pretrained or a Detectron2 .pth.")
        raw = dict(checkpoint["model"])
        incompatible = checkpointer._load_model(checkpoint)
    model_shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    bad = [k for k in incompatible.missing_keys if _is_backbone_key(k)]
    bad += [k for k, _, _ in incompatible.incorrect_shapes if _is_backbone_key(k)]
    if not bad:
        return
    by_part = {}
    for key, value in raw.items():
        part = backbone_part(str(key))
        if part is not None:
            by_part.setdefault(part, value)
    # examples: misshapen before absent, convolutions before norms and shortcuts
    bad.sort(key=lambda k: (by_part.get(backbone_part(k)) is None, ".norm." in k, ".shortcut" in k))
    examples = []
    for key in bad[:3]:
        found = by_part.get(backbone_part(key))
        examples.append(f"{key}: model {model_shapes.get(key)}, "
                        + (f"weights {_shape(found)}" if found is not None else "not in the weights"))
    total = sum(1 for k in model_shapes if _is_backbone_key(k))
    message = (f"MODEL.WEIGHTS {weights} does not fit the backbone this config builds: {len(bad)} "
               f"of its {total} backbone tensors are missing or have another shape "
               f"({'; '.join(examples)}), and Detectron2 would train those from random init.")
    try:
        arch = detectron2_arch(raw)
    except (ConversionError, KeyError):
        arch = None
    if arch is None:
        message += (" The file holds no complete ResNet backbone: give weights converted with "
                    "infomin-convert-pretrained, or 'MODEL.WEIGHTS \"\"' to train from random init.")
        raise ValueError(message)
    settings = shape_settings(arch)
    if checkpoint.get("__author__") == "infomin":  # our converter: torchvision-style blocks
        settings["MODEL.RESNETS.STRIDE_IN_1X1"] = False
    opts = " ".join(f"{k} {v}" for k, v in settings.items())
    message += f" The weights are a {arch.name}; add: {opts}"
    if arch.block == "basic" and "Res5ROIHeads" in cfg.MODEL.ROI_HEADS.NAME:
        message += (" (R18/R34 have basic blocks, which C4 models cannot use: pick an FPN config, "
                    "e.g. detection/coco/mask_rcnn_R50_FPN_1x_coco_infomin.yaml)")
    elif arch.block == "basic" and arch.res2_channels != 64:
        message += (" (Detectron2 builds R18/R34 only with RES2_OUT_CHANNELS 64, so these weights "
                    "need a custom backbone)")
    raise ValueError(message + ".")


# ------------------------------------------------------------------------------- configs and data

# top-level sections of infomin's pretraining / view-learning configs that Detectron2 has not
PRETRAINING_SECTIONS = ("VIEWS", "DATA", "KNN", "LINEAR", "LEARN", "GENERATOR", "CHECKPOINT")


def _config_keys(path, depth=0):
    """Top-level keys and MODEL keys of a YAML config and its _BASE_ chain (None if unreadable)."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    top = set(data)
    model = set(data["MODEL"]) if isinstance(data.get("MODEL"), dict) else set()
    base = data.get("_BASE_")
    if isinstance(base, str) and "://" not in base and depth < 10:
        inherited = _config_keys(os.path.join(os.path.dirname(path), os.path.expanduser(base)), depth + 1)
        if inherited:
            top |= inherited[0]
            model |= inherited[1]
    return top, model


def check_detection_config(path, name=None):
    """Refuse a pretraining (or view-learning) config before yacs reports an unknown key."""
    keys = _config_keys(path)
    if keys is None:
        return  # Detectron2's own loader reports what is wrong with the file
    top, model = keys
    name = name or path
    found = sorted(top & set(PRETRAINING_SECTIONS)) + (["MODEL.ARCH"] if "ARCH" in model else [])
    if found and "META_ARCHITECTURE" not in model:
        tool = "infomin-learn-views" if {"LEARN", "GENERATOR"} & top else "infomin-pretrain"
        raise ValueError(
            f"{name} is a {'view-learning' if tool == 'infomin-learn-views' else 'pretraining'} "
            f"config (it sets {', '.join(found)}), not a Detectron2 detection config: run it with "
            f"'{tool} --config-file {name}', or give infomin-train-net a detection config "
            "(detection/coco/*.yaml, detection/voc/*.yaml).")


def _coco_categories(json_file, tail_bytes=1 << 20):
    """The "categories" list of a COCO json, without parsing a multi-GB file when it is at the end."""
    size = os.path.getsize(json_file)
    with open(json_file, "rb") as f:
        if size > 64 << 20:
            f.seek(size - tail_bytes)
            tail = f.read().decode("utf-8", "ignore")
            at = tail.rfind('"categories"')
            if at < 0:
                return None
            start = tail.find("[", at)
            try:
                return json.JSONDecoder().raw_decode(tail[start:])[0]
            except ValueError:
                return None
        try:
            return json.load(f).get("categories")
        except (ValueError, AttributeError):
            return None


def check_coco_classes(name):
    """A COCO json whose categories differ from the names its dataset is registered with (a
    builtin coco_* name promises COCO's 80 classes) fails here, not as Detectron2's
    'Attribute thing_classes cannot be set to a different value' after the model is built."""
    meta = MetadataCatalog.get(name)
    expected, json_file = meta.get("thing_classes"), meta.get("json_file")
    if expected is None or not json_file or not os.path.isfile(json_file):
        return
    categories = _coco_categories(json_file)
    if not categories:
        return
    found = [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
    if found != list(expected):
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise ValueError(
            f"dataset {name!r} reads {json_file}, whose {len(found)} categories ({shown}) are not "
            f"the {len(expected)} classes the name {name!r} stands for. Register the folder under "
            "a name of your own with --coco-dataset NAME JSON IMAGE_ROOT, use it in "
            f"DATASETS.TRAIN/TEST, and set MODEL.ROI_HEADS.NUM_CLASSES {len(found)}.")
