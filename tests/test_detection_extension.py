"""The pieces of infomin.detection one at a time: ExtraNorm head, dataset registration, the
compiled-ops and AMP checks, and train_net's refusals (each with its message, before any work)."""
import os
import shutil
import uuid

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads

import infomin.detection.compiled_ops as compiled_ops
from infomin.detection import (
    CompiledOpsRequired, Res5ROIHeadsExtraNorm, build_evaluator, builtin_root, check_compiled_ops,
    register_coco_folder, register_voc_folder, voc_class_names,
)
from infomin.detection.datasets import VOC_CLASS_NAMES
from infomin.detection.cli.train_net import main
from infomin.detection.trainer import check_amp
from _detection_helpers import TINY_MODEL, make_detection_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C4 = os.path.join(ROOT, "configs/detection/voc/faster_rcnn_R50_C4_24k_voc0712_infomin.yaml")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_detection_data(str(tmp_path_factory.mktemp("det_ext")), n_train=2, n_test=1)


def _c4_cfg(head):
    cfg = get_cfg()
    cfg.merge_from_file(C4)
    cfg.merge_from_list(TINY_MODEL + ["MODEL.ROI_HEADS.NAME", head, "MODEL.RPN.POST_NMS_TOPK_TEST", "20"])
    return cfg


# ---- Res5ROIHeadsExtraNorm -------------------------------------------------------------------

def test_extra_norm_is_registered_and_adds_only_the_norm():
    assert ROI_HEADS_REGISTRY.get("Res5ROIHeadsExtraNorm") is Res5ROIHeadsExtraNorm
    torch.manual_seed(0)
    plain = build_model(_c4_cfg("Res5ROIHeads")).eval()
    extra = build_model(_c4_cfg("Res5ROIHeadsExtraNorm")).eval()
    result = extra.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(result.missing_keys) == sorted(
        f"roi_heads.res5.norm.{k}" for k in ("weight", "bias", "running_mean", "running_var"))
    assert result.unexpected_keys == []
    norm = extra.roi_heads.res5.norm
    assert norm.num_features == 256  # RES2_OUT_CHANNELS 32 x 8

    # res5 of the ExtraNorm head = plain res5 followed by the norm (analytic, eval mode)
    x = torch.randn(4, 128, 14, 14)
    with torch.no_grad():
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.normal_()
        norm.bias.normal_()
        expected = plain.roi_heads.res5(x)
        expected = (expected - norm.running_mean[:, None, None]) / torch.sqrt(
            norm.running_var[:, None, None] + norm.eps) * norm.weight[:, None, None] + norm.bias[:, None, None]
        assert torch.allclose(extra.roi_heads.res5(x), expected, atol=1e-4)

    # and the detector's forward goes through it: identity norm -> the plain head's detections
    image = [{"image": torch.rand(3, 64, 96) * 255, "height": 64, "width": 96}]
    with torch.no_grad():
        a = plain.inference(image, do_postprocess=False)[0]
        c = extra.inference(image, do_postprocess=False)[0]
        assert not (len(a) == len(c) and torch.allclose(a.pred_boxes.tensor, c.pred_boxes.tensor))
        norm.reset_parameters()
        norm.running_var.fill_(1 - norm.eps)
        b = extra.inference(image, do_postprocess=False)[0]
        assert torch.allclose(a.pred_boxes.tensor, b.pred_boxes.tensor, atol=1e-4)
        assert torch.allclose(a.scores, b.scores, atol=1e-5)


def test_extra_norm_public_constructor_without_config():
    cfg = _c4_cfg("Res5ROIHeads")
    shape = {"res4": build_model(cfg).backbone.output_shape()["res4"]}
    head = Res5ROIHeadsExtraNorm(extra_norm="BN", **Res5ROIHeads.from_config(cfg, shape))
    assert isinstance(head.res5.norm, torch.nn.BatchNorm2d) and head.res5.norm.num_features == 256
    with pytest.raises(ValueError, match="needs a norm layer after res5"):
        Res5ROIHeadsExtraNorm(extra_norm="", **Res5ROIHeads.from_config(cfg, shape))


# ---- compiled ops and AMP ----------------------------------------------------------------------

def test_has_compiled_ops_matches_the_installed_build():
    import importlib.util
    assert compiled_ops.has_compiled_ops() == (importlib.util.find_spec("detectron2._C") is not None)


@pytest.mark.parametrize("key,value,feature", [
    ("MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, True, True, True], "deformable convolution"),
    ("MODEL.PROPOSAL_GENERATOR.NAME", "RRPN", "rotated boxes"),
    ("MODEL.ROI_HEADS.NAME", "RROIHeads", "rotated boxes"),
    ("MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignRotated", "rotated boxes"),
])
def test_config_needing_compiled_ops_is_refused(key, value, feature):
    cfg = get_cfg()
    check_compiled_ops(cfg, available=False)  # the default config needs nothing compiled
    cfg.merge_from_list([key, value])
    with pytest.raises(CompiledOpsRequired) as err:
        check_compiled_ops(cfg, available=False)
    message = str(err.value)
    assert key in message and feature in message and "from source" in message
    check_compiled_ops(cfg, available=True)


def test_amp_is_refused_where_no_mixed_precision_runs():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    check_amp(cfg)
    cfg.SOLVER.AMP.ENABLED = True
    check_amp(cfg)  # the CPU: bfloat16 autocast (tests/test_detection_train.py)
    cfg.MODEL.DEVICE = "mps"
    with pytest.raises(ValueError, match="SOLVER.AMP.ENABLED False"):
        check_amp(cfg)
    if not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cuda"
        with pytest.raises(ValueError, match="no CUDA device is available"):
            check_amp(cfg)


# ---- dataset registration ----------------------------------------------------------------------

def test_voc_class_names_from_the_folder(data, tmp_path):
    assert voc_class_names(data["voc_dir"]) == ("disc", "square")  # non-VOC names: sorted
    name = register_voc_folder(f"voc_{uuid.uuid4().hex}", data["voc_dir"], "trainval", 2012)
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["disc", "square"] and meta.year == 2012
    assert meta.evaluator_type == "pascal_voc"

    copy = str(tmp_path / "VOCcopy")
    shutil.copytree(data["voc_dir"], copy)
    with open(os.path.join(copy, "labels.txt"), "w") as f:
        f.write("square\ndisc\n")
    assert voc_class_names(copy) == ("square", "disc")  # labels.txt wins, in its order
    os.remove(os.path.join(copy, "labels.txt"))
    for xml in os.listdir(os.path.join(copy, "Annotations")):  # VOC's own names: VOC's 20 in order
        path = os.path.join(copy, "Annotations", xml)
        text = open(path).read().replace(">square<", ">person<").replace(">disc<", ">car<")
        open(path, "w").write(text)
    assert voc_class_names(copy) == tuple(VOC_CLASS_NAMES)


def test_voc_registration_refuses_bad_folders(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="split list for 'val'"):
        register_voc_folder("bad_split", data["voc_dir"], "val")
    copy = str(tmp_path / "VOCnopose")
    shutil.copytree(data["voc_dir"], copy)
    for xml in os.listdir(os.path.join(copy, "Annotations")):
        path = os.path.join(copy, "Annotations", xml)
        text = open(path).read().replace("<pose>Unspecified</pose>", "")
        open(path, "w").write(text)
    with pytest.raises(ValueError, match="lacks \\['pose'\\]"):
        register_voc_folder("bad_pose", copy, "trainval")
    with pytest.raises(ValueError, match="year must be an integer"):
        register_voc_folder("bad_year", data["voc_dir"], "trainval", "VOC2007")


def test_coco_registration(data):
    name = f"coco_{uuid.uuid4().hex}"
    register_coco_folder(name, data["coco_train_json"], data["coco_train_images"])
    assert register_coco_folder(name, data["coco_train_json"], data["coco_train_images"]) == name
    with pytest.raises(ValueError, match="already registered with different data"):
        register_coco_folder(name, data["coco_val_json"], data["coco_val_images"])
    with pytest.raises(FileNotFoundError, match="COCO annotation file"):
        register_coco_folder("missing", data["coco_train_json"] + ".nope", data["coco_train_images"])
    assert MetadataCatalog.get(name).evaluator_type == "coco"


def test_builtin_root_follows_detectron2_datasets(monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", "/data/sets")
    assert builtin_root() == "/data/sets"
    monkeypatch.delenv("DETECTRON2_DATASETS")
    assert builtin_root() == "datasets"


def test_dataset_without_evaluator_is_refused():
    name = f"no_eval_{uuid.uuid4().hex}"
    MetadataCatalog.get(name).set(thing_classes=["a"])
    with pytest.raises(ValueError, match="no evaluator for dataset"):
        build_evaluator(get_cfg(), name)


# ---- train_net refuses before any work ---------------------------------------------------------

def _run_main(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_train_net_refusals(data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # builtin names resolve under ./datasets: absent here
    out = str(tmp_path / "out")
    voc = ["--voc-dataset", "t_trainval", data["voc_dir"], "trainval", "2007",
           "--voc-dataset", "t_test", data["voc_dir"], "test", "2007"]
    base = ["--config-file", C4, *voc, "OUTPUT_DIR", out, "DATASETS.TRAIN", "('t_trainval',)",
            "DATASETS.TEST", "('t_test',)", "MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.NUM_CLASSES", "2"]

    code, err = _run_main(capsys, *base)
    assert code == 2 and "needs backbone weights" in err and "infomin-convert-pretrained" in err

    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", str(tmp_path / "none.pkl"))
    assert code == 2 and "does not exist" in err

    ckpt = str(tmp_path / "ckpt.pth")
    torch.save({"format": "infomin.pretrain", "model": {"encoder.conv1.weight": torch.zeros(1)}}, ckpt)
    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", ckpt)
    assert code == 2 and "is a pretraining checkpoint" in err and "ckpt.pkl" in err

    # AMP on the CPU trains (bfloat16); on a device with no mixed precision it is refused
    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", "", "SOLVER.AMP.ENABLED", "True", "MODEL.DEVICE", "mps")
    assert code == 2 and "SOLVER.AMP.ENABLED False" in err and "MODEL.DEVICE cpu" in err

    monkeypatch.setattr(compiled_ops, "has_compiled_ops", lambda: False)  # a pure-Python build
    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", "", "MODEL.RESNETS.DEFORM_ON_PER_STAGE",
                          "[False, True, True, True]")
    assert code == 2 and "MODEL.RESNETS.DEFORM_ON_PER_STAGE" in err and "detectron2._C" in err

    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", "", "DATASETS.TEST", "('nowhere',)")
    assert code == 2 and "'nowhere' is not registered" in err and "--coco-dataset" in err

    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", "", "DATASETS.TRAIN", "('coco_2017_train',)")
    assert code == 2 and "instances_train2017.json, which does not exist" in err and "DETECTRON2_DATASETS" in err

    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", "", "MODEL.ROI_HEADS.NUM_CLASSES", "20")
    assert code == 2 and "has 2 classes but MODEL.ROI_HEADS.NUM_CLASSES is 20" in err

    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", "", "SOLVER.NO_SUCH_KEY", "1")
    assert code == 2 and "bad KEY VALUE override" in err

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on our CPU machines
    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cuda")
    assert code == 2 and "add 'MODEL.DEVICE cpu'" in err
    code, err = _run_main(capsys, "--num-gpus", "2", *base, "MODEL.WEIGHTS", "")
    assert code == 2 and "--num-gpus 2 but this machine has 0 CUDA GPU(s)" in err

    code, err = _run_main(capsys, *base, "MODEL.WEIGHTS", "", "--eval-only")
    assert code == 2 and "--eval-only comes after the KEY VALUE overrides" in err

    code, err = _run_main(capsys, "--config-file", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in err
    assert not os.path.exists(out)  # refused before anything was written
