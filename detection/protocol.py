"""Which configs are published transfer protocols, and whether a run keeps their batch.

The published COCO/VOC numbers were trained with a global batch of 16 images and synchronised BN,
so BN statistics were computed over those 16 images. Running the same iterations with another
global batch changes both the BN batch and the schedule measured in epochs, so the numbers are no
longer the protocol's. `train_net` warns about that once, in the launching process.
"""
from __future__ import annotations

import os

import yaml
from detectron2.engine import DefaultTrainer

from infomin.configs import CONFIG_ROOT

__all__ = ["PROTOCOL_BATCH", "PROTOCOL_FOLDERS", "BATCH_ADVICE", "protocol_config",
           "global_batch", "batch_warning"]

PROTOCOL_BATCH = 16
PROTOCOL_FOLDERS = (CONFIG_ROOT / "detection" / "coco", CONFIG_ROOT / "detection" / "voc")

BATCH_ADVICE = (
    "The published numbers used a global batch of 16 images with BN statistics over those 16 "
    "(synchronised BN). Kept by: one GPU with enough memory running SOLVER.IMS_PER_BATCH 16 "
    "unchanged, or --num-gpus k with IMS_PER_BATCH 16 (16/k images per GPU). Not kept by: "
    "SOLVER.REFERENCE_WORLD_SIZE (Detectron2 rescales the batch to the GPUs you have) or a "
    "smaller IMS_PER_BATCH: both change the BN batch and the schedule in epochs."
)


def _base_chain(path: str):
    """The config file and every file its `_BASE_` entries lead to, nearest first."""
    seen = set()
    while path and path not in seen:
        seen.add(path)
        yield path
        try:
            with open(path) as f:
                base = (yaml.safe_load(f) or {}).get("_BASE_")
        except (OSError, yaml.YAMLError):
            return
        path = os.path.realpath(os.path.join(os.path.dirname(path), base)) if base else None


def protocol_config(config_file: str) -> str | None:
    """The protocol config (under configs/detection/coco or voc) that `config_file` is or
    inherits from, as a name relative to the config folder; None for other configs (the demo's
    configs/study/ and the bare Base-RCNN-* files are not protocols by themselves)."""
    folders = [os.path.realpath(f) for f in PROTOCOL_FOLDERS]
    for path in _base_chain(os.path.realpath(config_file)):
        if os.path.dirname(path) in folders:
            return os.path.relpath(path, os.path.realpath(CONFIG_ROOT))
    return None


def global_batch(cfg, world_size: int) -> int:
    """SOLVER.IMS_PER_BATCH after Detectron2's REFERENCE_WORLD_SIZE scaling for `world_size`."""
    try:
        return DefaultTrainer.auto_scale_workers(cfg, world_size).SOLVER.IMS_PER_BATCH
    except AssertionError:  # IMS_PER_BATCH not divisible: Detectron2 itself refuses it later
        return cfg.SOLVER.IMS_PER_BATCH


def batch_warning(cfg, config_file: str, world_size: int, name: str | None = None) -> str | None:
    """The warning for a protocol config run with a global batch other than 16, else None
    (`name`: how the user spelt the config, shown in the message)."""
    protocol = protocol_config(config_file)
    if protocol is None:
        return None
    batch = global_batch(cfg, world_size)
    if batch == PROTOCOL_BATCH:
        return None
    scaled = (f" (SOLVER.IMS_PER_BATCH {cfg.SOLVER.IMS_PER_BATCH} scaled by "
              f"SOLVER.REFERENCE_WORLD_SIZE {cfg.SOLVER.REFERENCE_WORLD_SIZE} to {world_size} "
              "process(es))" if batch != cfg.SOLVER.IMS_PER_BATCH else "")
    return (f"{name or config_file} is the published protocol {protocol}, but this run has a global batch "
            f"of {batch}{scaled}, not {PROTOCOL_BATCH}: its results are not comparable with the "
            f"published numbers. {BATCH_ADVICE}")
