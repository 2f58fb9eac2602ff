"""The user path end to end, through the command lines: a pretraining checkpoint, converted by
the real converter, fine-tuned by ``tools/train_net.py`` on COCO-layout data found through
``$DETECTRON2_DATASETS`` and the config's builtin names, then re-evaluated with ``--eval-only``."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torchvision

from infomin.convert import convert_checkpoint
from _detection_helpers import TINY_RUN, make_detection_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/detection/coco/mask_rcnn_R50_FPN_1x_coco_infomin.yaml"
# R-18 backbone (the converter's smallest), FPN and heads narrowed; structure as configured.
R18 = ["MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64", "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.CONV_DIM", "32",
       "MODEL.ROI_BOX_HEAD.FC_DIM", "64", "MODEL.ROI_MASK_HEAD.CONV_DIM", "32"]


def _train_net(args, env):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_net.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _bbox_ap(metrics_file):
    with open(metrics_file) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [row for row in rows if "bbox/AP" in row][-1]


@pytest.mark.slow
def test_checkpoint_to_finetuned_detector(tmp_path):
    data = make_detection_data(str(tmp_path / "datasets"), n_train=4, n_test=2, coco_categories=True)
    torch.manual_seed(0)
    encoder = torchvision.models.resnet18()
    encoder.fc = torch.nn.Identity()
    model = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    model.update({"head.0.weight": torch.zeros(128, 512), "head.0.bias": torch.zeros(128)})
    ckpt = str(tmp_path / "infomin_r18.pth")
    torch.save({"format": "infomin.pretrain", "format_version": 1, "arch": "resnet18", "width": 1,
                "method": "InfoMin", "model": model, "model_ema": None}, ckpt)
    weights = str(tmp_path / "infomin_r18.pkl")
    convert_checkpoint(ckpt, weights)

    env = dict(os.environ, DETECTRON2_DATASETS=data["root"])
    out = str(tmp_path / "output")
    common = ["--config-file", CONFIG, "MODEL.DEVICE", "cpu", "OUTPUT_DIR", out,
              *R18, *TINY_RUN, "MODEL.ROI_HEADS.NUM_CLASSES", "80"]
    # DATASETS stay the config's builtin coco_2017_train / coco_2017_val
    _train_net([*common, "MODEL.WEIGHTS", weights], env)

    log = open(os.path.join(out, "log.txt")).read()
    missing = log.split("Some model parameters or buffers are not found in the checkpoint:")[1]
    missing = missing.split("\n[")[0]  # up to the next log record
    assert "bottom_up" not in missing and "backbone.fpn_lateral2" in missing
    assert "not used by the model" not in log  # the converter dropped the projection head
    trained = _bbox_ap(os.path.join(out, "metrics.json"))
    assert all(math.isfinite(trained[k]) for k in ("total_loss", "loss_mask", "loss_rpn_cls") if k in trained)
    assert "segm/AP" in trained and 0.0 <= trained["bbox/AP"] <= 100.0
    assert os.path.isfile(os.path.join(out, "model_final.pth"))

    # --eval-only on the fine-tuned weights reproduces the end-of-training predictions exactly
    predictions = os.path.join(out, "inference", "coco_2017_val", "instances_predictions.pth")
    after_training = torch.load(predictions, weights_only=False)
    os.remove(predictions)
    _train_net(["--eval-only", *common, "MODEL.WEIGHTS", os.path.join(out, "model_final.pth")], env)
    reloaded = torch.load(predictions, weights_only=False)
    assert len(reloaded) == len(after_training) == 2
    for a, b in zip(after_training, reloaded):
        assert a["image_id"] == b["image_id"] and len(a["instances"]) == len(b["instances"]) > 0
        for x, y in zip(a["instances"], b["instances"]):
            assert x["category_id"] == y["category_id"]
            assert x["bbox"] == pytest.approx(y["bbox"], abs=1e-3)
            assert x["score"] == pytest.approx(y["score"], abs=1e-5)
