"""The protocol configs equal the published ones, key by key, after merging.

The oracle is a transcription of the published YAML files into the table below (values only,
inheritance kept): HobbitLong/PyContrast `pycontrast/detection/configs/*.yaml` (commit 84f94eab)
and facebookresearch/moco `detection/configs/*.yaml` (commit 132aea9). The test rebuilds each
published config on top of Detectron2's defaults, as Detectron2 would merge the file, and compares
every key with our merged config. Two differences are allowed, both documented:

* MODEL.WEIGHTS of the self-supervised configs: theirs is the placeholder "See Instructions",
  ours starts with "REQUIRED" (train_net refuses to start without real weights).
* every norm the published configs call "SyncBN" is "naiveSyncBN" here: with the torch (<= 1.5)
  of the published runs, Detectron2 built NaiveSyncBatchNorm for "SyncBN"; since Detectron2
  02478d2e it builds nn.SyncBatchNorm, and MoCo's configs moved to "naiveSyncBN".
"""
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d, NaiveSyncBatchNorm
from detectron2.modeling import build_model

import infomin.detection  # noqa: F401  (registers Res5ROIHeadsExtraNorm)
from _detection_helpers import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COCO = "configs/detection/coco"
VOC = "configs/detection/voc"

SSL_INPUT = {  # the four settings of every *_infomin.yaml / *_moco.yaml
    "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530], "MODEL.PIXEL_STD": [58.395, 57.120, 57.375],
    "MODEL.WEIGHTS": "See Instructions", "MODEL.RESNETS.STRIDE_IN_1X1": False, "INPUT.FORMAT": "RGB",
}
SCHED_2X = {"SOLVER.STEPS": (120000, 160000), "SOLVER.MAX_ITER": 180000}
SCHED_6X = {"SOLVER.STEPS": (480000, 520000), "SOLVER.MAX_ITER": 540000}
COCO_DATA = {"DATASETS.TRAIN": ("coco_2017_train",), "DATASETS.TEST": ("coco_2017_val",)}
FPN_SYNCBN = {  # what R_50/R_101/X_101/CasFPN_1x.yaml add to Base-RCNN-FPN.yaml
    "MODEL.MASK_ON": True, "MODEL.BACKBONE.FREEZE_AT": 0, "MODEL.RESNETS.NORM": "SyncBN",
    "MODEL.FPN.NORM": "SyncBN", "MODEL.ROI_BOX_HEAD.NAME": "FastRCNNConvFCHead",
    "MODEL.ROI_BOX_HEAD.NUM_CONV": 4, "MODEL.ROI_BOX_HEAD.NUM_FC": 1, "MODEL.ROI_BOX_HEAD.NORM": "SyncBN",
    "MODEL.ROI_MASK_HEAD.NORM": "SyncBN", "TEST.PRECISE_BN.ENABLED": True,
    "SOLVER.STEPS": (60000, 80000), "SOLVER.MAX_ITER": 90000,
}

# published file -> (its _BASE_, the values it sets)
PUBLISHED = {
    # ---- PyContrast pycontrast/detection/configs/
    "pc/Base-RCNN-C4-BN": (None, {
        "MODEL.META_ARCHITECTURE": "GeneralizedRCNN", "MODEL.RPN.PRE_NMS_TOPK_TEST": 6000,
        "MODEL.RPN.POST_NMS_TOPK_TEST": 1000, "MODEL.ROI_HEADS.NAME": "Res5ROIHeadsExtraNorm",
        "MODEL.BACKBONE.FREEZE_AT": 0, "MODEL.RESNETS.NORM": "SyncBN",
        "TEST.PRECISE_BN.ENABLED": True, "SOLVER.IMS_PER_BATCH": 16, "SOLVER.BASE_LR": 0.02}),
    "pc/Base-RCNN-FPN": (None, {
        "MODEL.META_ARCHITECTURE": "GeneralizedRCNN", "MODEL.BACKBONE.NAME": "build_resnet_fpn_backbone",
        "MODEL.RESNETS.OUT_FEATURES": ["res2", "res3", "res4", "res5"],
        "MODEL.FPN.IN_FEATURES": ["res2", "res3", "res4", "res5"],
        "MODEL.ANCHOR_GENERATOR.SIZES": [[32], [64], [128], [256], [512]],
        "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": [[0.5, 1.0, 2.0]],
        "MODEL.RPN.IN_FEATURES": ["p2", "p3", "p4", "p5", "p6"], "MODEL.RPN.PRE_NMS_TOPK_TRAIN": 2000,
        "MODEL.RPN.PRE_NMS_TOPK_TEST": 1000, "MODEL.RPN.POST_NMS_TOPK_TRAIN": 1000,
        "MODEL.RPN.POST_NMS_TOPK_TEST": 1000, "MODEL.ROI_HEADS.NAME": "StandardROIHeads",
        "MODEL.ROI_HEADS.IN_FEATURES": ["p2", "p3", "p4", "p5"],
        "MODEL.ROI_BOX_HEAD.NAME": "FastRCNNConvFCHead", "MODEL.ROI_BOX_HEAD.NUM_FC": 2,
        "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": 7, "MODEL.ROI_MASK_HEAD.NAME": "MaskRCNNConvUpsampleHead",
        "MODEL.ROI_MASK_HEAD.NUM_CONV": 4, "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION": 14, **COCO_DATA,
        "SOLVER.IMS_PER_BATCH": 16, "SOLVER.BASE_LR": 0.02, "SOLVER.STEPS": (60000, 80000),
        "SOLVER.MAX_ITER": 90000, "INPUT.MIN_SIZE_TRAIN": (640, 672, 704, 736, 768, 800)}),
    "pc/R_50_C4_1x": ("pc/Base-RCNN-C4-BN", {
        "MODEL.MASK_ON": True, "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-50.pkl",
        "INPUT.MIN_SIZE_TRAIN": (640, 672, 704, 736, 768, 800), "INPUT.MIN_SIZE_TEST": 800, **COCO_DATA,
        "SOLVER.STEPS": (60000, 80000), "SOLVER.MAX_ITER": 90000}),
    "pc/R_50_C4_1x_infomin": ("pc/R_50_C4_1x", SSL_INPUT),
    "pc/R_50_C4_2x": ("pc/R_50_C4_1x", SCHED_2X),
    "pc/R_50_C4_2x_infomin": ("pc/R_50_C4_1x_infomin", SCHED_2X),
    "pc/R_101_C4_1x": ("pc/Base-RCNN-C4-BN", {
        "MODEL.MASK_ON": True, "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-101.pkl",
        "MODEL.RESNETS.DEPTH": 101, "INPUT.MIN_SIZE_TRAIN": (640, 672, 704, 736, 768, 800),
        "INPUT.MIN_SIZE_TEST": 800, **COCO_DATA, "SOLVER.STEPS": (60000, 80000), "SOLVER.MAX_ITER": 90000}),
    "pc/R_101_C4_1x_infomin": ("pc/R_101_C4_1x", SSL_INPUT),
    "pc/R_101_C4_2x": ("pc/R_101_C4_1x", SCHED_2X),
    "pc/R_101_C4_2x_infomin": ("pc/R_101_C4_1x_infomin", SCHED_2X),
    "pc/R_50_FPN_1x": ("pc/Base-RCNN-FPN", {
        **FPN_SYNCBN, "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-50.pkl",
        "MODEL.RESNETS.DEPTH": 50}),
    "pc/R_50_FPN_1x_infomin": ("pc/R_50_FPN_1x", SSL_INPUT),
    "pc/R_50_FPN_1x_rand": ("pc/R_50_FPN_1x", {"MODEL.WEIGHTS": ""}),
    "pc/R_50_FPN_2x": ("pc/R_50_FPN_1x", SCHED_2X),
    "pc/R_50_FPN_2x_infomin": ("pc/R_50_FPN_1x_infomin", SCHED_2X),
    "pc/R_50_FPN_2x_rand": ("pc/R_50_FPN_1x", {"MODEL.WEIGHTS": "", **SCHED_2X}),
    "pc/R_50_FPN_6x": ("pc/R_50_FPN_1x", SCHED_6X),
    "pc/R_50_FPN_6x_infomin": ("pc/R_50_FPN_1x_infomin", SCHED_6X),
    "pc/R_50_FPN_6x_rand": ("pc/R_50_FPN_1x", {"MODEL.WEIGHTS": "", **SCHED_6X}),
    "pc/R_101_FPN_1x": ("pc/Base-RCNN-FPN", {
        **FPN_SYNCBN, "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-101.pkl",
        "MODEL.RESNETS.DEPTH": 101}),
    "pc/R_101_FPN_1x_infomin": ("pc/R_101_FPN_1x", SSL_INPUT),
    "pc/R_101_FPN_2x": ("pc/R_101_FPN_1x", SCHED_2X),
    "pc/R_101_FPN_2x_infomin": ("pc/R_101_FPN_1x_infomin", SCHED_2X),
    "pc/X_101_FPN_1x": ("pc/Base-RCNN-FPN", {
        **FPN_SYNCBN, "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/FAIR/X-101-32x8d.pkl",
        "MODEL.PIXEL_STD": [57.375, 57.120, 58.395], "MODEL.RESNETS.STRIDE_IN_1X1": False,
        "MODEL.RESNETS.NUM_GROUPS": 32, "MODEL.RESNETS.WIDTH_PER_GROUP": 8, "MODEL.RESNETS.DEPTH": 101}),
    "pc/X_101_FPN_1x_infomin": ("pc/X_101_FPN_1x", SSL_INPUT),
    "pc/X_101_FPN_2x": ("pc/X_101_FPN_1x", SCHED_2X),
    "pc/X_101_FPN_2x_infomin": ("pc/X_101_FPN_1x_infomin", SCHED_2X),
    "pc/R_101_CasFPN_1x": ("pc/Base-RCNN-FPN", {
        **FPN_SYNCBN, "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-101.pkl",
        "MODEL.RESNETS.DEPTH": 101, "MODEL.ROI_HEADS.NAME": "CascadeROIHeads",
        "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": True, "MODEL.RPN.POST_NMS_TOPK_TRAIN": 2000}),
    "pc/R_101_CasFPN_1x_infomin": ("pc/R_101_CasFPN_1x", SSL_INPUT),
    "pc/R_101_CasFPN_2x": ("pc/R_101_CasFPN_1x", SCHED_2X),
    "pc/R_101_CasFPN_2x_infomin": ("pc/R_101_CasFPN_1x_infomin", SCHED_2X),
    # ---- MoCo detection/configs/ (its Base-RCNN-C4-BN.yaml now says naiveSyncBN itself)
    "moco/Base-RCNN-C4-BN": ("pc/Base-RCNN-C4-BN", {"MODEL.RESNETS.NORM": "naiveSyncBN"}),
    "moco/pascal_voc_R_50_C4_24k": ("moco/Base-RCNN-C4-BN", {
        "MODEL.MASK_ON": False, "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-50.pkl",
        "MODEL.ROI_HEADS.NUM_CLASSES": 20,
        "INPUT.MIN_SIZE_TRAIN": (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800),
        "INPUT.MIN_SIZE_TEST": 800, "DATASETS.TRAIN": ("voc_2007_trainval", "voc_2012_trainval"),
        "DATASETS.TEST": ("voc_2007_test",), "SOLVER.STEPS": (18000, 22000), "SOLVER.MAX_ITER": 24000,
        "SOLVER.WARMUP_ITERS": 100}),
    "moco/pascal_voc_R_50_C4_24k_moco": ("moco/pascal_voc_R_50_C4_24k", SSL_INPUT),
    # random init on VOC: no published file; built like PyContrast's *_rand (supervised, no weights)
    "derived/pascal_voc_R_50_C4_24k_rand": ("moco/pascal_voc_R_50_C4_24k", {"MODEL.WEIGHTS": ""}),
}

# our config -> the published config it reproduces
OURS = {f"{COCO}/mask_rcnn_R50_FPN_{s}_coco_{i}.yaml": f"pc/R_50_FPN_{s}{suffix}"
        for s in ("1x", "2x", "6x") for i, suffix in
        (("supervised", ""), ("infomin", "_infomin"), ("random", "_rand"))}
for s in ("1x", "2x"):
    for i, suffix in (("supervised", ""), ("infomin", "_infomin")):
        OURS[f"{COCO}/mask_rcnn_R50_C4_{s}_coco_{i}.yaml"] = f"pc/R_50_C4_{s}{suffix}"
        OURS[f"{COCO}/mask_rcnn_R101_C4_{s}_coco_{i}.yaml"] = f"pc/R_101_C4_{s}{suffix}"
        OURS[f"{COCO}/mask_rcnn_R101_FPN_{s}_coco_{i}.yaml"] = f"pc/R_101_FPN_{s}{suffix}"
        OURS[f"{COCO}/mask_rcnn_X101_32x8d_FPN_{s}_coco_{i}.yaml"] = f"pc/X_101_FPN_{s}{suffix}"
        OURS[f"{COCO}/cascade_mask_rcnn_R101_FPN_{s}_coco_{i}.yaml"] = f"pc/R_101_CasFPN_{s}{suffix}"
OURS[f"{VOC}/faster_rcnn_R50_C4_24k_voc0712_supervised.yaml"] = "moco/pascal_voc_R_50_C4_24k"
OURS[f"{VOC}/faster_rcnn_R50_C4_24k_voc0712_infomin.yaml"] = "moco/pascal_voc_R_50_C4_24k_moco"
OURS[f"{VOC}/faster_rcnn_R50_C4_24k_voc0712_random.yaml"] = "derived/pascal_voc_R_50_C4_24k_rand"

NORM_KEYS = ("MODEL.RESNETS.NORM", "MODEL.FPN.NORM", "MODEL.ROI_BOX_HEAD.NORM", "MODEL.ROI_MASK_HEAD.NORM")


def published_cfg(name):
    """The published file merged on Detectron2's defaults (its _BASE_ chain first)."""
    chain = []
    while name:
        base, values = PUBLISHED[name]
        chain.append(values)
        name = base
    cfg = get_cfg()
    for values in reversed(chain):
        cfg.merge_from_list([x for kv in values.items() for x in kv])
    return cfg


def our_cfg(path):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, path))
    return cfg


def flatten(node, prefix=""):
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def test_every_protocol_config_has_a_published_counterpart():
    on_disk = {os.path.relpath(os.path.join(dp, f), ROOT)
               for top in (COCO, VOC) for dp, _, files in os.walk(os.path.join(ROOT, top))
               for f in files if f.endswith(".yaml")}
    ours_only = {f"{COCO}/faster_rcnn_R50_FPN_1x_coco_supervised.yaml",  # boxes only: no published file
                 f"{COCO}/faster_rcnn_R50_FPN_1x_coco_infomin.yaml"}
    assert on_disk - ours_only == set(OURS)


@pytest.mark.parametrize("path", sorted(OURS))
def test_merged_config_equals_the_published_one(path):
    ours, theirs = flatten(our_cfg(path)), flatten(published_cfg(OURS[path]))
    for key in NORM_KEYS:
        if theirs[key] == "SyncBN":
            theirs[key] = "naiveSyncBN"
    if theirs["MODEL.WEIGHTS"] == "See Instructions":
        assert ours.pop("MODEL.WEIGHTS").startswith("REQUIRED")
        theirs.pop("MODEL.WEIGHTS")
    assert ours.keys() == theirs.keys()
    diff = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    assert diff == {}, f"{path} differs from {OURS[path]} (ours, published): {diff}"


@pytest.mark.parametrize("path", sorted(p for p in OURS if p.endswith("_random.yaml")))
def test_random_init_is_the_supervised_config_without_weights(path):
    ours = flatten(our_cfg(path))
    supervised = flatten(our_cfg(path.replace("_random.yaml", "_supervised.yaml")))
    assert ours.pop("MODEL.WEIGHTS") == "" and supervised.pop("MODEL.WEIGHTS").startswith("detectron2://")
    assert ours == supervised
    assert ours["INPUT.FORMAT"] == "BGR" and ours["MODEL.RESNETS.STRIDE_IN_1X1"] is True
    assert ours["MODEL.PIXEL_STD"] == [1.0, 1.0, 1.0]


def _norms(module):
    return [m for m in module.modules()
            if isinstance(m, (torch.nn.modules.batchnorm._NormBase, FrozenBatchNorm2d,
                              torch.nn.GroupNorm, torch.nn.LayerNorm))]


@pytest.mark.parametrize("path", sorted(set(OURS) | {f"{COCO}/faster_rcnn_R50_FPN_1x_coco_infomin.yaml"}))
def test_every_norm_layer_is_naive_sync_bn(path):
    cfg = our_cfg(path)
    cfg.merge_from_list(TINY_MODEL + ["MODEL.WEIGHTS", ""])
    model = build_model(cfg)
    heads = model.roi_heads
    if cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm":
        parts = {"backbone": model.backbone, "res5 (C4 head)": heads.res5,
                 "C4 extra norm": heads.res5.norm}
    else:
        box_heads = heads.box_head if isinstance(heads.box_head, torch.nn.ModuleList) else [heads.box_head]
        parts = {"backbone (ResNet)": model.backbone.bottom_up,
                 "FPN": torch.nn.ModuleList([m for n, m in model.backbone.named_children()
                                             if n.startswith("fpn_")])}
        parts.update({f"box head {i}": h for i, h in enumerate(box_heads)})
        if cfg.MODEL.MASK_ON:  # the C4 mask head is a bare deconv (no conv, no norm) as published
            parts["mask head"] = heads.mask_head
    for part, module in parts.items():
        norms = _norms(module)
        assert norms, f"{path}: {part} has no norm layer"
        wrong = {type(m).__name__ for m in norms if type(m) is not NaiveSyncBatchNorm}
        assert not wrong, f"{path}: {part} has {wrong}, expected only NaiveSyncBatchNorm"


def test_converter_resnext_settings_fit_the_infomin_x101_config():
    """A torchvision ResNeXt-101 32x8d, as the converter describes it, is what the config builds."""
    import torchvision
    from infomin.convert.resnet import infer_arch

    with torch.device("meta"):
        state = torchvision.models.resnext101_32x8d().state_dict()
    settings = infer_arch(state).detectron2_settings()
    cfg = flatten(our_cfg(f"{COCO}/mask_rcnn_X101_32x8d_FPN_1x_coco_infomin.yaml"))
    assert {k: cfg[k] for k in settings} == settings


def test_cascade_trains_and_predicts_without_compiled_ops():
    """CascadeROIHeads needs nothing from detectron2._C: one training step and one inference."""
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage
    from infomin.detection import check_compiled_ops

    cfg = our_cfg(f"{COCO}/cascade_mask_rcnn_R101_FPN_1x_coco_infomin.yaml")
    cfg.merge_from_list(TINY_MODEL + ["MODEL.WEIGHTS", "", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64",
                                      "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "16"])
    check_compiled_ops(cfg, available=False)  # not refused by train_net's up-front check
    torch.manual_seed(0)
    model = build_model(cfg)
    gt = Instances((64, 96), gt_boxes=Boxes(torch.tensor([[10.0, 10.0, 40.0, 40.0]])),
                   gt_classes=torch.tensor([1]))
    mask = torch.zeros(1, 64, 96, dtype=torch.bool)
    mask[:, 10:40, 10:40] = True
    gt.gt_masks = BitMasks(mask)
    batch = [{"image": torch.rand(3, 64, 96) * 255, "instances": gt} for _ in range(2)]
    with EventStorage(0):
        losses = model(batch)
    assert {f"loss_cls_stage{i}" for i in range(3)} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 64, 96) * 255}])
    assert out[0]["instances"].has("pred_masks")
