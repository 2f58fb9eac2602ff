"""Architecture inference and key mapping, checked against torchvision and Detectron2 builders.

Models are built on the meta device: shapes only, no memory or compute, so every depth and
ResNeXt/wide variant is cheap. Oracles: torchvision's own state_dict shapes, and the key/shape
set of Detectron2's `build_resnet_backbone` configured with the settings the converter prints.
"""
import pytest
import torch
import torchvision
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.resnet import build_resnet_backbone

from infomin.convert import ConversionError, check_backbone, detectron2_name, infer_arch
from infomin.models.encoders import build_encoder

# torchvision name -> (depth, NUM_GROUPS, WIDTH_PER_GROUP, STEM_OUT_CHANNELS, RES2_OUT_CHANNELS)
TORCHVISION = {
    "resnet18": (18, 1, 64, 64, 64),
    "resnet34": (34, 1, 64, 64, 64),
    "resnet50": (50, 1, 64, 64, 256),
    "resnet101": (101, 1, 64, 64, 256),
    "resnet152": (152, 1, 64, 64, 256),
    "resnext50_32x4d": (50, 32, 4, 64, 256),
    "resnext101_32x8d": (101, 32, 8, 64, 256),
    "resnext101_64x4d": (101, 64, 4, 64, 256),
    "wide_resnet50_2": (50, 1, 128, 64, 256),
}
SETTING_KEYS = ("MODEL.RESNETS.DEPTH", "MODEL.RESNETS.NUM_GROUPS", "MODEL.RESNETS.WIDTH_PER_GROUP",
                "MODEL.RESNETS.STEM_OUT_CHANNELS", "MODEL.RESNETS.RES2_OUT_CHANNELS")


def backbone_state(model):
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


def detectron2_shapes(settings: dict) -> dict:
    """Key -> shape of the ResNet Detectron2 builds from `settings` (all stages, BN, on meta)."""
    cfg = get_cfg()
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.merge_from_list([x for item in settings.items() for x in item])
    with torch.device("meta"):
        backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    return {k: tuple(v.shape) for k, v in backbone.state_dict().items()}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_infers_torchvision_architectures(name):
    with torch.device("meta"):
        model = torchvision.models.get_model(name, weights=None)
    state = backbone_state(model)
    arch = infer_arch(state)
    check_backbone(state, arch)
    assert arch.name == name
    settings = arch.detectron2_settings()
    assert tuple(settings[k] for k in SETTING_KEYS) == TORCHVISION[name]
    assert settings["MODEL.RESNETS.STRIDE_IN_1X1"] is False and settings["INPUT.FORMAT"] == "RGB"
    expected = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert arch.expected_shapes() == expected


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet152", "resnext50_32x4d", "wide_resnet50_2"])
def test_converted_names_and_shapes_are_exactly_detectron2s(name):
    with torch.device("meta"):
        state = backbone_state(torchvision.models.get_model(name, weights=None))
    ours = {detectron2_name(k): tuple(v.shape) for k, v in state.items()}
    assert ours == detectron2_shapes(infer_arch(state).detectron2_settings())


# PyContrast's released ResNeXts that torchvision has no builder for: name -> (depth, groups, width
# per group), from PyContrast's docs/MODEL_ZOO.md names (resnext101v1 = 32x4d, resnext152v1/v2 =
# 32x4d/32x8d) and networks/resnet.py (resnext152v3 = 64x4d)
PYCONTRAST_ONLY = {
    "resnext101_32x4d": (101, 32, 4),
    "resnext152_32x4d": (152, 32, 4),
    "resnext152_32x8d": (152, 32, 8),
    "resnext152_64x4d": (152, 64, 4),
}


@pytest.mark.parametrize("name", list(PYCONTRAST_ONLY))
def test_our_extra_resnexts_convert_to_the_detectron2_resnext_of_that_name(name):
    with torch.device("meta"):
        state = backbone_state(build_encoder(name))
    arch = infer_arch(state)
    check_backbone(state, arch)
    assert arch.name == name
    settings = arch.detectron2_settings()
    assert tuple(settings[k] for k in SETTING_KEYS) == (*PYCONTRAST_ONLY[name], 64, 256)
    ours = {detectron2_name(k): tuple(v.shape) for k, v in state.items()}
    assert ours == detectron2_shapes(settings)


@pytest.mark.parametrize("arch_name,width,expected", [
    ("resnet50", 2, "resnet50x2"), ("resnet50", 0.5, "resnet50x0.5"),
    ("resnet18", 2, "resnet18x2"), ("resnet18", 0.25, "resnet18x0.25")])
def test_width_multiplier_of_our_encoders(arch_name, width, expected):
    with torch.device("meta"):
        state = backbone_state(build_encoder(arch_name, width=width))
    arch = infer_arch(state)
    check_backbone(state, arch)
    assert arch.name == expected and arch.width_multiplier == width
    settings = arch.detectron2_settings()
    assert settings["MODEL.RESNETS.STEM_OUT_CHANNELS"] == max(64 * width, 64)  # PyContrast's rule
    if arch.block == "bottleneck":  # Detectron2 builds R18/34 only at RES2_OUT_CHANNELS 64
        assert settings["MODEL.RESNETS.RES2_OUT_CHANNELS"] == 256 * width
        assert settings["MODEL.RESNETS.WIDTH_PER_GROUP"] == 64 * width
        ours = {detectron2_name(k): tuple(v.shape) for k, v in state.items()}
        assert ours == detectron2_shapes(settings)


@pytest.mark.parametrize("key,d2", [
    ("conv1.weight", "stem.conv1.weight"),
    ("bn1.running_var", "stem.conv1.norm.running_var"),
    ("layer3.5.bn2.weight", "res4.5.conv2.norm.weight"),
    ("layer1.0.downsample.1.bias", "res2.0.shortcut.norm.bias"),
    ("layer4.2.conv3.weight", "res5.2.conv3.weight"),
    ("layer2.0.downsample.0.weight", "res3.0.shortcut.weight"),
    ("layer1.0.bn1.num_batches_tracked", "res2.0.conv1.norm.num_batches_tracked"),
])
def test_key_mapping_examples(key, d2):  # examples from PyContrast's / MoCo's documented mapping
    assert detectron2_name(key) == d2


def test_unknown_key_is_rejected_by_the_mapping():
    with pytest.raises(KeyError, match="not a torchvision ResNet backbone key"):
        detectron2_name("layer1.0.se.fc1.weight")


def test_cifar_stem_and_non_rgb_stem_are_refused():
    with torch.device("meta"):
        model = torchvision.models.resnet18()
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    with pytest.raises(ConversionError, match="not 7x7.*CIFAR"):
        infer_arch(backbone_state(model))
    with torch.device("meta"):
        model = build_encoder("resnet18", in_channels=1)
    with pytest.raises(ConversionError, match="1 input channels"):
        infer_arch(backbone_state(model))
