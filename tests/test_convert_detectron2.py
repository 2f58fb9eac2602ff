"""Converted weights load into real Detectron2 models and reproduce torchvision's features.

Oracle: torchvision's own forward pass (layer1..layer4) and Detectron2's DetectionCheckpointer.
Every backbone tensor is set to NaN before each load, so "no NaN afterwards" proves no backbone
key was missed; the checkpointer's log must report no unexpected keys. Every format must give
a pickle equal, array for array, to the one (from our own format) that is loaded into the FPN
and, for R-50, the C4 model; so every format reaches Detectron2 with the same, verified weights.
"""
import logging
import pickle

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from infomin.convert import FORMATS, convert_checkpoint

from _convert_helpers import VARIANTS, random_resnet, save_checkpoint, torchvision_features

SIZE = 64  # small input keeps R-50 cheap; res5 is 2x2 here


def d2_cfg(kind: str, depth: int):
    """GeneralizedRCNN config with a torchvision-style ResNet (STRIDE_IN_1X1 False, BN, FREEZE_AT 0)."""
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64 if depth < 50 else 256
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    if kind == "fpn":
        cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
        cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
        cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
        cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
        cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
        cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
        cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
        cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
        cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64  # heads are not under test; keep them cheap to build
    else:  # C4: Detectron2's stock Res5ROIHeads holds res5
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res4"]
        cfg.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"
    return cfg


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def load_converted(model, prefixes, path):
    """Poison the backbone, load `path` with DetectionCheckpointer, return its log messages."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.startswith(prefixes) and t.is_floating_point():
                t.fill_(float("nan"))
    checkpointer = DetectionCheckpointer(model)
    records = _Records()
    checkpointer.logger.addHandler(records)
    try:
        checkpointer.load(path)
    finally:
        checkpointer.logger.removeHandler(records)
    poisoned = [n for n, t in model.state_dict().items()
                if n.startswith(prefixes) and t.is_floating_point() and torch.isnan(t).any()]
    assert not poisoned, f"backbone keys not loaded: {poisoned[:5]}"
    unexpected = [m for m in records.messages if "not used by the model" in m]
    assert not unexpected, unexpected
    missing = "\n".join(m for m in records.messages if "not found in the checkpoint" in m)
    for part in ("bottom_up", "stem", "res2", "res3", "res4", "res5"):
        assert part not in missing, missing
    assert not any("incompatible shapes" in m or "Shape of" in m for m in records.messages)
    return records.messages


def assert_close(got, want):
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-4


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(1)
    return torch.randn(2, 3, SIZE, SIZE)


@pytest.fixture(scope="module")
def resnets(tmp_path_factory, inputs):
    """arch -> a random torchvision ResNet, its features and its conversion from our own format
    (built once per module, on first use)."""
    cache = {}

    def get(arch):
        if arch not in cache:
            model = random_resnet(arch, seed=len(arch))
            setup = {"arch": arch, "dir": tmp_path_factory.mktemp(arch),
                     "want": torchvision_features(model, inputs), "model": model}
            setup["reference"] = convert_variant(setup, "infomin")[1]
            cache[arch] = setup
        return cache[arch]

    return get


def read_weights(path):
    with open(path, "rb") as f:
        data = pickle.load(f)
    assert data["__author__"] == "infomin" and data["matching_heuristics"] is True
    return data["model"]


def convert_variant(setup, variant):
    src, dst = setup["dir"] / f"{variant}.pth", setup["dir"] / f"{variant}.pkl"
    fmt, ema = save_checkpoint(setup["model"], variant, src)
    auto = convert_checkpoint(str(src), str(dst), ema=ema)  # format detected
    assert auto.fmt == fmt
    return auto, str(dst)


def check_fpn(model, path, inputs, want):
    load_converted(model, ("backbone.bottom_up.",), path)
    with torch.no_grad():
        got = model.backbone.bottom_up(inputs)
    for name in ("res2", "res3", "res4", "res5"):
        assert_close(got[name], want[name])


def check_c4(model, path, inputs, want):
    load_converted(model, ("backbone.", "roi_heads.res5."), path)
    with torch.no_grad():
        res4 = model.backbone(inputs)["res4"]
        res5 = model.roi_heads.res5(res4)
    assert_close(res4, want["res4"])
    assert_close(res5, want["res5"])


EXPECTED = {  # torchvision name -> (tensors incl. num_batches_tracked, depth, RES2_OUT_CHANNELS)
    "resnet18": (20 + 20 * 5, 18, 64),  # 20 convs, 20 BNs
    "resnet50": (53 + 53 * 5, 50, 256),  # 53 convs, 53 BNs
}


# R-18 in every variant; R-50 (4x the bytes) in every format, EMA selection being arch-independent
CASES = [("resnet18", v) for v in VARIANTS] + [("resnet50", v) for v in FORMATS]


@pytest.mark.parametrize("arch,variant", CASES)
def test_every_format_gives_the_same_detectron2_weights(resnets, arch, variant):
    resnet = resnets(arch)
    summary, path = convert_variant(resnet, variant)
    count, depth, res2 = EXPECTED[resnet["arch"]]
    assert summary.arch.name == resnet["arch"] and summary.converted == count
    settings = summary.detectron2_settings
    assert settings["MODEL.RESNETS.DEPTH"] == depth
    assert settings["MODEL.RESNETS.RES2_OUT_CHANNELS"] == res2
    assert settings["MODEL.RESNETS.STRIDE_IN_1X1"] is False
    got, want = read_weights(path), read_weights(resnet["reference"])
    assert sorted(got) == sorted(want) and len(got) == count
    for name, array in want.items():
        assert got[name].dtype == array.dtype and np.array_equal(got[name], array), name


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_loads_into_fpn_and_reproduces_torchvision(resnets, arch, inputs):
    resnet = resnets(arch)
    depth = EXPECTED[resnet["arch"]][1]
    check_fpn(build_model(d2_cfg("fpn", depth)).eval(), resnet["reference"], inputs, resnet["want"])


def test_resnext101_32x4d_loads_into_fpn_and_reproduces_our_encoder(resnets, inputs):
    """PyContrast's resnext101v1, which torchvision has no builder for, built by our encoder
    builder from torchvision blocks (ARCHS: 32 groups x 4): converted, it is Detectron2's X-101
    32x4d and computes the same features."""
    resnet = resnets("resnext101_32x4d")
    summary, path = convert_variant(resnet, "infomin")
    assert summary.arch.name == "resnext101_32x4d" and summary.converted == 104 + 104 * 5  # 104 convs, 104 BNs
    cfg = d2_cfg("fpn", 101)
    cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 32, 4
    check_fpn(build_model(cfg).eval(), path, inputs, resnet["want"])


def test_resnet50_loads_into_c4_with_res5_in_the_roi_head(resnets, inputs):
    resnet = resnets("resnet50")  # C4's res5 is built of bottlenecks: R-50 and deeper only
    check_c4(build_model(d2_cfg("c4", 50)).eval(), resnet["reference"], inputs, resnet["want"])


def test_printed_settings_are_valid_detectron2_opts(tmp_path):
    src, dst = tmp_path / "tv.pth", str(tmp_path / "tv.pkl")
    save_checkpoint(random_resnet("resnet18"), "torchvision", src)
    summary = convert_checkpoint(str(src), dst)
    cfg = get_cfg()
    cfg.merge_from_list(summary.detectron2_opts())
    assert cfg.INPUT.FORMAT == "RGB" and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False
    assert list(cfg.MODEL.PIXEL_MEAN) == [123.675, 116.28, 103.53]
    assert list(cfg.MODEL.PIXEL_STD) == [58.395, 57.12, 57.375]
    assert cfg.MODEL.RESNETS.DEPTH == 18 and cfg.MODEL.RESNETS.RES2_OUT_CHANNELS == 64
