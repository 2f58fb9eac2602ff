"""The evaluators our trainer picks score the ground truth itself as perfect (AP 100).

Predictions are built from the dataset dicts Detectron2 loads (json / XML parsed by its loaders);
the evaluators read the annotations on their own (pycocotools on the json, voc_eval on the XML),
so a wrong box convention or class mapping anywhere shows up as AP < 100.
"""
import uuid

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, Instances, polygons_to_bitmask
from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator

from infomin.detection import build_evaluator, register_coco_folder, register_voc_folder
from _detection_helpers import make_detection_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_detection_data(str(tmp_path_factory.mktemp("det_eval")), n_train=1, n_test=3)


def _ground_truth_as_predictions(record, with_masks):
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in record["annotations"]]
    inst = Instances((record["height"], record["width"]))
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.ones(len(boxes))
    inst.pred_classes = torch.tensor([a["category_id"] for a in record["annotations"]])
    if with_masks:
        masks = [polygons_to_bitmask(a["segmentation"], record["height"], record["width"])
                 for a in record["annotations"]]
        inst.pred_masks = torch.from_numpy(__import__("numpy").stack(masks))
    return {"instances": inst}


def _evaluate(evaluator, name, with_masks):
    evaluator.reset()
    for record in DatasetCatalog.get(name):
        evaluator.process([record], [_ground_truth_as_predictions(record, with_masks)])
    return evaluator.evaluate()


def test_coco_evaluator_scores_ground_truth_100(data, tmp_path):
    name = register_coco_folder(f"gt_coco_{uuid.uuid4().hex}", data["coco_val_json"], data["coco_val_images"])
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.OUTPUT_DIR = str(tmp_path)
    evaluator = build_evaluator(cfg, name)
    assert isinstance(evaluator, COCOEvaluator)
    results = _evaluate(evaluator, name, with_masks=True)
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["segm"]["AP"] == pytest.approx(100.0)
    assert results["bbox"]["AP50"] == pytest.approx(100.0)


def test_voc_evaluator_scores_ground_truth_100(data, tmp_path):
    name = register_voc_folder(f"gt_voc_{uuid.uuid4().hex}", data["voc_dir"], "test", 2007)
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    evaluator = build_evaluator(cfg, name)
    assert isinstance(evaluator, PascalVOCDetectionEvaluator)
    results = _evaluate(evaluator, name, with_masks=False)
    assert results["bbox"]["AP50"] == pytest.approx(100.0)
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["bbox"]["AP75"] == pytest.approx(100.0)


def test_evaluators_see_a_wrong_class_as_a_miss(data, tmp_path):
    """The oracle can fail: swapping the two classes takes AP to 0."""
    name = register_voc_folder(f"gt_voc_swap_{uuid.uuid4().hex}", data["voc_dir"], "test", 2007)
    evaluator = PascalVOCDetectionEvaluator(name)
    evaluator.reset()
    for record in DatasetCatalog.get(name):
        out = _ground_truth_as_predictions(record, with_masks=False)
        out["instances"].pred_classes = 1 - out["instances"].pred_classes
        evaluator.process([record], [out])
    assert evaluator.evaluate()["bbox"]["AP50"] == pytest.approx(0.0)
