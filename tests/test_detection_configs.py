"""Every Detectron2 config in configs/ builds its model, and says what the protocol says.

Widths are shrunk for speed (depth, head structure, norms and ROI head type stay the config's).
The protocol values are checked against MoCo's and PyContrast's published configs (see
test_detection_protocols.py for the key-by-key comparison), not against the files themselves.
"""
import glob
import os

import pytest
import torch
import yaml
from detectron2.config import get_cfg
from detectron2.layers import get_norm
from detectron2.modeling import build_model

from infomin.detection import Res5ROIHeadsExtraNorm
from _detection_helpers import TINY_HEADS, TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_DETECTRON2 = ("pretrain", "views")  # configs/<these>/ hold the pretraining engine's configs


def _base_root(path):
    """The file a config's _BASE_ chain starts from."""
    while True:
        with open(path) as f:
            base = yaml.safe_load(f).get("_BASE_")
        if not base:
            return path
        path = os.path.normpath(os.path.join(os.path.dirname(path), base))


def _is_detectron2_config(path):
    top = os.path.relpath(_base_root(path), os.path.join(ROOT, "configs")).split(os.sep)[0]
    return top not in NOT_DETECTRON2


CONFIGS = sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)
    if _is_detectron2_config(p)
)
# the transfer protocols (configs/detection/coco, configs/detection/voc); other Detectron2 configs
# (e.g. the study's) only have to build
PROTOCOLS = [p for p in CONFIGS if p.split(os.sep)[1:3] in (["detection", "coco"], ["detection", "voc"])]
TORCHVISION_MEAN = [123.675, 116.280, 103.530]
TORCHVISION_STD = [58.395, 57.120, 57.375]


def load(path):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, path))
    return cfg


def test_configs_found():
    names = {os.path.basename(p) for p in CONFIGS}
    for schedule in ("1x", "2x", "6x"):
        for init in ("infomin", "supervised", "random"):
            assert f"mask_rcnn_R50_FPN_{schedule}_coco_{init}.yaml" in names
    for schedule in ("1x", "2x"):
        for init in ("infomin", "supervised"):
            assert f"mask_rcnn_R50_C4_{schedule}_coco_{init}.yaml" in names
    for init in ("infomin", "supervised", "random"):
        assert f"faster_rcnn_R50_C4_24k_voc0712_{init}.yaml" in names
    for init in ("infomin", "supervised"):
        assert f"faster_rcnn_R50_FPN_1x_coco_{init}.yaml" in names
        for schedule in ("1x", "2x"):
            for stem in ("mask_rcnn_R101_C4", "mask_rcnn_R101_FPN", "mask_rcnn_X101_32x8d_FPN",
                         "cascade_mask_rcnn_R101_FPN"):
                assert f"{stem}_{schedule}_coco_{init}.yaml" in names


@pytest.mark.parametrize("path", CONFIGS)
def test_config_builds_its_model(path):
    cfg = load(path)
    cfg.merge_from_list(TINY_MODEL if cfg.MODEL.RESNETS.DEPTH >= 50 else TINY_HEADS)
    model = build_model(cfg)
    assert model.device == torch.device("cpu")
    if cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm":
        assert isinstance(model.roi_heads, Res5ROIHeadsExtraNorm)
        assert type(model.roi_heads.res5.norm) is type(get_norm(cfg.MODEL.RESNETS.NORM, 8))
    assert model.roi_heads.mask_on == cfg.MODEL.MASK_ON
    # fine-tuned end to end: nothing frozen
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("path", PROTOCOLS)
def test_protocol_values(path):
    cfg = load(path)
    name = os.path.basename(path)
    init = name.rsplit("_", 1)[1][: -len(".yaml")]
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 0 and cfg.MODEL.RESNETS.NORM == "naiveSyncBN"
    assert cfg.TEST.PRECISE_BN.ENABLED
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR) == (16, 0.02)
    if init in ("supervised", "random"):  # random init = the supervised config without weights
        if init == "supervised":
            assert cfg.MODEL.WEIGHTS.startswith("detectron2://ImageNetPretrained/")
        else:
            assert cfg.MODEL.WEIGHTS == ""
        assert cfg.INPUT.FORMAT == "BGR"
        if "_X101_" in name:  # FAIR's Caffe2 ResNeXt: per-channel std, stride in the 3x3 conv
            assert list(cfg.MODEL.PIXEL_STD) == [57.375, 57.120, 58.395] and not cfg.MODEL.RESNETS.STRIDE_IN_1X1
        else:
            assert list(cfg.MODEL.PIXEL_STD) == [1.0, 1.0, 1.0] and cfg.MODEL.RESNETS.STRIDE_IN_1X1
    else:
        assert cfg.INPUT.FORMAT == "RGB" and not cfg.MODEL.RESNETS.STRIDE_IN_1X1
        assert list(cfg.MODEL.PIXEL_MEAN) == TORCHVISION_MEAN
        assert list(cfg.MODEL.PIXEL_STD) == TORCHVISION_STD
        assert cfg.MODEL.WEIGHTS.startswith("REQUIRED")
    schedule = {"1x": (90000, (60000, 80000)), "2x": (180000, (120000, 160000)),
                "6x": (540000, (480000, 520000)), "24k": (24000, (18000, 22000))}
    key = next(s for s in schedule if f"_{s}_" in name)
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS)) == schedule[key]
    if "voc0712" in name:
        assert cfg.DATASETS.TRAIN == ("voc_2007_trainval", "voc_2012_trainval")
        assert cfg.DATASETS.TEST == ("voc_2007_test",)
        assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 20 and cfg.SOLVER.WARMUP_ITERS == 100
        assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == tuple(range(480, 801, 32))
    else:
        assert cfg.DATASETS.TRAIN == ("coco_2017_train",) and cfg.DATASETS.TEST == ("coco_2017_val",)
        assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == tuple(range(640, 801, 32))
    assert cfg.MODEL.MASK_ON == name.startswith(("mask_rcnn", "cascade_mask_rcnn"))
    if "_C4_" in name:
        assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm"
    else:
        assert (cfg.MODEL.ROI_BOX_HEAD.NUM_CONV, cfg.MODEL.ROI_BOX_HEAD.NUM_FC) == (4, 1)
        assert cfg.MODEL.FPN.NORM == cfg.MODEL.ROI_BOX_HEAD.NORM == cfg.MODEL.ROI_MASK_HEAD.NORM == "naiveSyncBN"


def test_readme_lists_every_protocol():
    readme = open(os.path.join(ROOT, "configs", "README.md")).read()
    for path in PROTOCOLS:
        stem = os.path.basename(path).rsplit("_", 1)[0]
        assert f"`{os.path.basename(os.path.dirname(path))}/{stem}_*`" in readme, path
