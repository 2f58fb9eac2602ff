"""`MODEL.WEIGHTS infomin://NAME` loads a zoo checkpoint into a Detectron2 model."""
import pytest
import torch

from _zoo_helpers import ZooServer, entry, resnet18_pycontrast, sha256, write_catalog

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.utils.file_io import PathManager  # noqa: E402

import infomin.detection.zoo_handler  # noqa: E402,F401  (registers infomin://)
from infomin.zoo import UnknownModelError, get_entry  # noqa: E402



def _torchvision_name(d2: str) -> str:
    """Inverse of the published MoCo/PyContrast renaming (MoCo `detection/convert-pretrain-to-detectron2.py`, PyContrast `detection/convert_pretrained.py`)."""
    name = d2.replace("stem.conv1.norm.", "bn1.").replace("stem.conv1.", "conv1.")
    for i in range(2, 6):
        name = name.replace(f"res{i}.", f"layer{i - 1}.")
    name = name.replace("shortcut.norm.", "downsample.1.").replace("shortcut.", "downsample.0.")
    for j in (1, 2, 3):
        name = name.replace(f"conv{j}.norm.", f"bn{j}.")
    return name


@pytest.fixture(scope="module")
def r18():
    return resnet18_pycontrast(seed=0)  # (file bytes, torchvision state_dict)


@pytest.fixture(scope="module")
def served_zoo(tmp_path_factory, r18):
    root = tmp_path_factory.mktemp("zoo")
    data = r18[0]
    with ZooServer({"/r18.pth": data}) as srv:
        cat = write_catalog(root / "catalog.yaml", {
            "TinyR18": entry("r18.pth", [srv.url("/r18.pth")], sha=sha256(data), depth=18,
                             arch="resnet18"),
        })
        yield srv, cat, root / "cache"


@pytest.fixture
def zoo_env(served_zoo, monkeypatch):
    srv, cat, cache = served_zoo
    monkeypatch.setenv("INFOMIN_ZOO_CATALOG", cat)
    monkeypatch.setenv("INFOMIN_CACHE", str(cache))
    return srv, cache


def _r18_fpn_cfg(weights: str):
    cfg = get_cfg()
    opts = {
        "MODEL.DEVICE": "cpu", "MODEL.META_ARCHITECTURE": "GeneralizedRCNN",
        "MODEL.BACKBONE.NAME": "build_resnet_fpn_backbone",
        "MODEL.RESNETS.OUT_FEATURES": ["res2", "res3", "res4", "res5"],
        "MODEL.RESNETS.RES2_OUT_CHANNELS": 64, "MODEL.FPN.IN_FEATURES": ["res2", "res3", "res4", "res5"],
        "MODEL.FPN.OUT_CHANNELS": 32, "MODEL.ANCHOR_GENERATOR.SIZES": [[32], [64], [128], [256], [512]],
        "MODEL.RPN.IN_FEATURES": ["p2", "p3", "p4", "p5", "p6"],
        "MODEL.ROI_HEADS.NAME": "StandardROIHeads", "MODEL.ROI_HEADS.NUM_CLASSES": 2,
        "MODEL.ROI_HEADS.IN_FEATURES": ["p2", "p3", "p4", "p5"],
        "MODEL.ROI_BOX_HEAD.NAME": "FastRCNNConvFCHead", "MODEL.ROI_BOX_HEAD.NUM_FC": 1,
        "MODEL.ROI_BOX_HEAD.FC_DIM": 64, "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": 7,
        "MODEL.WEIGHTS": weights,
    }
    # what the catalogue says this backbone needs (input convention, depth)
    opts.update(get_entry("TinyR18").detectron2_settings())
    cfg.merge_from_list([x for k, v in opts.items() for x in (k, v)])
    return cfg


def test_infomin_weights_load_into_a_detectron2_model(zoo_env, r18):
    srv, cache = zoo_env
    cfg = _r18_fpn_cfg("infomin://TinyR18")
    assert cfg.INPUT.FORMAT == "RGB" and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)

    backbone = model.backbone.bottom_up.state_dict()
    assert len(backbone) > 80
    for name, value in backbone.items():
        expected = r18[1][_torchvision_name(name)]
        torch.testing.assert_close(value, expected.to(value.dtype), msg=name)

    local = PathManager.get_local_path("infomin://TinyR18")
    assert local.endswith(".pkl") and local.startswith(str(cache))
    n = len(srv.requests)
    DetectionCheckpointer(build_model(cfg)).load("infomin://TinyR18")  # cached: no new download
    assert len(srv.requests) == n == 1


def test_bad_infomin_paths_fail_clearly(zoo_env):
    with pytest.raises(ValueError, match="infomin://NAME"):
        PathManager.get_local_path("infomin://")
    with pytest.raises(UnknownModelError, match="TinyR18"):
        PathManager.get_local_path("infomin://TinyR19")
    assert PathManager.exists("infomin://TinyR18") and not PathManager.exists("infomin://nope")
