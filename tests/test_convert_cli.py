"""The converter's command line: what its summary reports, and the tools/ wrapper."""
import os
import pickle
import runpy
import sys

import numpy as np
import pytest
import torch

from infomin.convert import convert_checkpoint
from infomin.cli.convert_pretrained import main

from _convert_helpers import random_resnet, save_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def resnet18():
    return random_resnet("resnet18", seed=7)


def test_summary_lists_converted_dropped_arch_and_settings(tmp_path, resnet18, capsys):
    save_checkpoint(resnet18, "infomin", tmp_path / "ours.pth")
    assert main([str(tmp_path / "ours.pth"), str(tmp_path / "ours.pkl")]) == 0
    out = capsys.readouterr().out
    assert "format: infomin; backbone taken from model[encoder.*]" in out
    assert "architecture: resnet18 (depth 18, basic blocks [2, 2, 2, 2]" in out
    assert "converted: 120 tensors" in out  # 20 convs + 20 BNs x (4 + num_batches_tracked)
    for line in ("model: head.* (4): projection head", "model: jigsaw_head.* (1): jigsaw head",
                 "model: encoder_ema.* (120): momentum (EMA) encoder; pass --ema",
                 "model: head_ema.* (4): momentum projection head",
                 "model: memory.* (2): memory bank / queue"):
        assert line in out
    assert "not model weights, ignored: format, format_version, arch, width, method, optimizer" in out
    for line in ("MODEL.RESNETS.DEPTH: 18", "MODEL.RESNETS.STRIDE_IN_1X1: False",
                 "MODEL.RESNETS.RES2_OUT_CHANNELS: 64", "MODEL.PIXEL_MEAN: [123.675, 116.28, 103.53]",
                 "MODEL.PIXEL_STD: [58.395, 57.12, 57.375]", 'INPUT.FORMAT: "RGB"'):
        assert line in out
    assert "C4 models (Res5ROIHeads) build a bottleneck res5" in out


def test_torchvision_classifier_fc_is_dropped_with_its_reason(tmp_path, resnet18):
    save_checkpoint(resnet18, "torchvision_ddp", tmp_path / "tv.pth")
    summary = convert_checkpoint(str(tmp_path / "tv.pth"), str(tmp_path / "tv.pkl"))
    assert [(d.pattern, d.count) for d in summary.dropped] == [("module.fc.*", 2)]
    assert "a detector has none" in summary.dropped[0].reason
    assert summary.source == "[module.*]"


def test_half_precision_weights_are_stored_as_float32(tmp_path, resnet18):
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in resnet18.state_dict().items()}
    torch.save({"state_dict": half, "arch": "resnet50"}, tmp_path / "fp16.pth")
    summary = convert_checkpoint(str(tmp_path / "fp16.pth"), str(tmp_path / "fp16.pkl"))
    with open(tmp_path / "fp16.pkl", "rb") as f:
        model = pickle.load(f)["model"]
    assert model["stem.conv1.weight"].dtype == np.float32
    np.testing.assert_array_equal(model["stem.conv1.weight"], half["conv1.weight"].float().numpy())
    assert any("float16 weights were stored as float32" in n for n in summary.notes)
    assert any("says its architecture is 'resnet50'" in n for n in summary.notes)


def test_tools_wrapper_converts_and_exits_zero(tmp_path, resnet18, monkeypatch, capsys):
    save_checkpoint(resnet18, "moco", tmp_path / "moco.pth")
    script = os.path.join(REPO, "tools", "convert_pretrained.py")
    monkeypatch.setattr(sys, "argv", [script, str(tmp_path / "moco.pth"), str(tmp_path / "moco.pkl")])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(script, run_name="__main__")
    assert done.value.code == 0
    assert "module.queue (1): negative-key queue" in capsys.readouterr().out
    with open(tmp_path / "moco.pkl", "rb") as f:
        data = pickle.load(f)
    assert data["__author__"] == "infomin" and data["matching_heuristics"] is True
    np.testing.assert_array_equal(data["model"]["res5.1.conv2.norm.running_mean"],
                                  resnet18.layer4[1].bn2.running_mean.numpy())


def test_converter_package_does_not_import_detectron2():
    import ast
    import infomin.convert

    folder = os.path.dirname(infomin.convert.__file__)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n.split(".")[0] == "detectron2" for n in names), name
