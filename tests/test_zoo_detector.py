"""A published fine-tuned detector (catalogue kind: detector), end to end: served over loopback,
fetched through `MODEL.WEIGHTS infomin://NAME` by `tools/train_net.py --eval-only`, loaded as it
is (no conversion) and evaluated on tiny COCO data under Detectron2's builtin names."""
import io
import json
import os
import subprocess
import sys

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import infomin.detection  # noqa: F401
from _detection_helpers import TINY_RUN, make_detection_data
from _zoo_helpers import ZooServer, entry, sha256, write_catalog
from infomin.zoo import ZooError, ensure_converted, get_entry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "detection/coco/mask_rcnn_R50_FPN_1x_coco_infomin.yaml"
# R-18 backbone, narrow FPN and heads (as tests/test_detection_cli.py); structure as configured
SMALL = ["MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
         "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.CONV_DIM", "32",
         "MODEL.ROI_BOX_HEAD.FC_DIM", "64", "MODEL.ROI_MASK_HEAD.CONV_DIM", "32",
         "MODEL.DEVICE", "cpu", *TINY_RUN, "MODEL.ROI_HEADS.NUM_CLASSES", "80"]


def _detector_checkpoint():
    """A Detectron2 checkpoint of the small model, as a fine-tuning run saves it."""
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", CONFIG))
    cfg.merge_from_list(SMALL + ["MODEL.WEIGHTS", ""])
    torch.manual_seed(0)
    model = build_model(cfg)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "iteration": 89999}, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_det")
    data = _detector_checkpoint()
    with ZooServer({"/s/abc/model_final.pth": data}) as srv:
        det = entry("model_final.pth", [srv.url("/s/abc/model_final.pth")], kind="detector",
                    config=CONFIG, detectron2=None, format="detectron2",
                    log=srv.url("/s/abc/log.txt"))
        enc = entry("tiny.pth", [srv.url("/tiny.pth")])
        catalog = write_catalog(root / "catalog.yaml", {"TinyDet": det, "TinyEnc": enc})
        yield srv, catalog, root / "cache", sha256(data)


@pytest.mark.slow
def test_eval_only_on_a_published_detector(served, tmp_path):
    srv, catalog, cache, digest = served
    datasets = make_detection_data(str(tmp_path / "datasets"), n_train=2, n_test=2, coco_categories=True)
    out = tmp_path / "out"
    env = dict(os.environ, INFOMIN_ZOO_CATALOG=catalog, INFOMIN_CACHE=str(cache),
               DETECTRON2_DATASETS=datasets["root"])
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--eval-only", "--config-file",
         CONFIG, *SMALL, "OUTPUT_DIR", str(out), "MODEL.WEIGHTS", "infomin://TinyDet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # fetched once, verified and pinned, and used as published: no conversion happened
    assert [p for p, _ in srv.requests].count("/s/abc/model_final.pth") == 1
    fetched = cache / "zoo" / "TinyDet" / "model_final.pth"
    assert (cache / "zoo" / "TinyDet" / "model_final.pth.sha256").read_text().strip() == digest
    assert not list((cache / "zoo" / "TinyDet").glob("*.d2.pkl"))
    log = (out / "log.txt").read_text()
    assert "Loading from infomin://TinyDet" in log
    # every parameter and buffer came from the published file
    assert "not found in the checkpoint" not in log and "not used by the model" not in log
    assert fetched.is_file()

    # evaluated by Detectron2's COCOEvaluator on the builtin coco_2017_val name
    predictions = out / "inference" / "coco_2017_val" / "coco_instances_results.json"
    assert predictions.is_file() and isinstance(json.loads(predictions.read_text()), list)
    assert "Evaluation results for bbox" in log and "Evaluation results for segm" in log


def test_a_detector_is_never_converted(served, monkeypatch):
    _, catalog, cache, _ = served
    monkeypatch.setenv("INFOMIN_ZOO_CATALOG", catalog)
    entry_ = get_entry("TinyDet")
    assert entry_.is_detector and not entry_.convertible
    with pytest.raises(ZooError, match="needs no conversion"):
        ensure_converted("TinyDet", cache=cache)
