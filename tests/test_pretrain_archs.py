"""The architectures PyContrast released, their configs, and a clear error for an unknown one.

Oracles: PyContrast's docs/MODEL_ZOO.md (arch, epochs, global batch of each released InfoMin
model) and README ("# Parameters" column, millions, backbone without classifier), and
torchvision's own builders for the names it has. Networks are built on the meta device (shapes
only), so even ResNeXt-152 32x8d costs nothing.
"""
import os

import pytest
import torch
import torchvision

from infomin.models import build_encoder
from infomin.models.encoders import ARCHS
from infomin.pretrain.cli.pretrain import main as pretrain_main
from infomin.pretrain.config import load_cfg

from _pretrain_helpers import REPO

CONFIGS = os.path.join(REPO, "configs", "pretrain")

# config -> (arch, epochs, global batch) of the released model (MODEL_ZOO.md section 2)
RELEASED = {
    "infomin_R101_300ep.yaml": ("resnet101", 300, 256),
    "infomin_R152_200ep.yaml": ("resnet152", 200, 256),
    "infomin_X101_32x4d_200ep.yaml": ("resnext101_32x4d", 200, 512),
    "infomin_X101_32x8d_200ep.yaml": ("resnext101_32x8d", 200, 512),
    "infomin_X101_64x4d_200ep.yaml": ("resnext101_64x4d", 200, 512),
    "infomin_X152_32x4d_200ep.yaml": ("resnext152_32x4d", 200, 512),
    "infomin_X152_32x8d_200ep.yaml": ("resnext152_32x8d", 200, 512),
}
# README "InfoMin with other architectures" (and R-50) parameter counts, in millions
README_PARAMS = {"resnet50": 24, "resnet101": 43, "resnet152": 58, "resnext101_32x8d": 87,
                 "resnext152_32x8d": 120}


def _params(arch):
    with torch.device("meta"):
        return sum(p.numel() for p in build_encoder(arch).parameters())


@pytest.mark.parametrize("name", list(RELEASED))
def test_each_released_architecture_has_an_infomin_config(name):
    cfg = load_cfg(os.path.join(CONFIGS, name))
    arch, epochs, batch = RELEASED[name]
    assert (cfg.MODEL.ARCH, cfg.SOLVER.EPOCHS, cfg.SOLVER.IMS_PER_BATCH) == (arch, epochs, batch)
    assert cfg.MODEL.METHOD == "InfoMin" and cfg.VIEWS.POLICY == "D" and cfg.MODEL.TEMPERATURE == 0.15
    assert os.path.basename(cfg.OUTPUT_DIR) == name[: -len(".yaml")]


@pytest.mark.parametrize("arch, millions", list(README_PARAMS.items()))
def test_parameter_counts_match_the_readme(arch, millions):
    assert round(_params(arch) / 1e6) == millions


@pytest.mark.parametrize("arch", [a for a in ARCHS if a in torchvision.models.list_models(torchvision.models)])
def test_archs_table_agrees_with_torchvision(arch):
    block, layers, groups, width_per_group = ARCHS[arch]
    with torch.device("meta"):
        ours = torchvision.models.resnet.ResNet(block, layers, groups=groups, width_per_group=width_per_group)
        theirs = torchvision.models.get_model(arch, weights=None)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_pycontrast_only_resnexts_have_their_group_widths():
    for arch, groups, width in [("resnext101_32x4d", 32, 4), ("resnext152_32x4d", 32, 4),
                                ("resnext152_32x8d", 32, 8), ("resnext152_64x4d", 64, 4)]:
        with torch.device("meta"):
            net = build_encoder(arch)
        conv = net.layer1[0].conv2  # the grouped 3x3 of the first res2 block
        assert (conv.groups, conv.out_channels) == (groups, groups * width)
        assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == (
            [3, 4, 23, 3] if "101" in arch else [3, 8, 36, 3])


def test_unknown_arch_is_a_one_line_usage_error(capsys):
    from _pretrain_helpers import usage_error

    message = usage_error(pretrain_main, ["MODEL.ARCH", "resnet51"], capsys, "infomin-pretrain")
    assert "unknown arch 'resnet51'; choose one of: resnet18" in message
    assert "resnext152_32x8d" in message and "Traceback" not in message


def test_bad_method_settings_stop_when_the_config_is_loaded():
    with pytest.raises(ValueError, match="unknown head 'MLP'; choose one of: linear, mlp"):
        load_cfg(None, ["MODEL.HEAD", "MLP"])
    with pytest.raises(ValueError, match="MODEL.METHOD 'BYOL' is unknown"):
        load_cfg(None, ["MODEL.METHOD", "BYOL"])
    with pytest.raises(ValueError, match="InsDis does not use bn_splits"):
        load_cfg(None, ["MODEL.METHOD", "InsDis", "MODEL.BN_SPLITS", "2"])
