"""The evaluators our trainer picks, on imperfect predictions whose AP is worked out by hand.

`test_detection_evaluators.py` scores the ground truth itself (AP 100); here boxes overlap their
object at IoU 38/62 = 0.613, a false positive outranks a true positive and an object is missed,
so a wrong IoU threshold rule, interpolation, box convention or VOC metric changes the numbers.

Scene (128 x 96 image; boxes in Detectron2's XYXY_ABS, pixel edges):
    g1 = (10, 10, 60, 60), g2 = (70, 10, 120, 60), g3 = (75, 66, 105, 92)     ground truth
    d1 = g1 moved 12 px right, score 0.90     IoU(d1, g1) = (50-12)*50 / (2*2500 - 38*50) = 38/62
    fp = (5, 66, 55, 92), score 0.85          overlaps no object
    d2 = g2 moved 12 px down, score 0.80      IoU(d2, g2) = 38/62 as well
    g3 is missed.
VOC's XML holds 1-based inclusive pixels, (x0 + 1, y0 + 1, x1, y1): with VOC's "+1" widths the
boxes are 50 px wide there too, so VOC's IoUs are the same 38/62 = 0.6129.
"""
import uuid

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator
from detectron2.structures import Boxes, BoxMode, Instances
from PIL import Image
from pycocotools import mask as mask_util

from infomin.detection import build_evaluator, register_coco_folder, register_voc_folder

H, W = 96, 128
G1, G2, G3 = (10, 10, 60, 60), (70, 10, 120, 60), (75, 66, 105, 92)
D1, FP, D2 = (22, 10, 72, 60), (5, 66, 55, 92), (70, 22, 120, 72)
IOU = 38 / 62  # 0.6129: a match at IoU thresholds 0.50, 0.55, 0.60; a miss from 0.65 up
IMAGES = {"one": (1, [G1]), "three": (2, [G1, G2, G3])}  # split -> (image id, objects)
EMPTY = "000009"  # a VOC scene without objects

# ---- hand-computed AP (percent) ---------------------------------------------------------------
# "one": d1 alone on g1. For IoU thresholds t <= 0.60 it is a true positive: precision 1 at
# recall 1, so AP_t = 100 in every method; for t >= 0.65 it is a false positive: AP_t = 0.
# Hence AP50 = 100, AP75 = 0 and AP (mean over t = 0.50, 0.55, ..., 0.95) = 3/10 * 100 = 30.
ONE = {"AP": 30.0, "AP50": 100.0, "AP75": 0.0}
# "three" at t <= 0.60, detections by score:
#   d1 TP: TP=1 FP=0 -> precision 1,   recall 1/3
#   fp   : TP=1 FP=1 -> precision 1/2, recall 1/3
#   d2 TP: TP=2 FP=1 -> precision 2/3, recall 2/3      (g3 never found: recall stops at 2/3)
# Interpolated precision p(r) = max precision at recall >= r: 1 for r <= 1/3, 2/3 for
# 1/3 < r <= 2/3, 0 above.
# COCO (pycocotools), 101 recall points r = 0.00, 0.01, ..., 1.00: 34 points r <= 0.33 get 1,
#   33 points 0.34..0.66 get 2/3, the rest 0 -> AP50 = (34 + 33 * 2/3) / 101 = 56/101 = 55.446%.
# VOC2007 11-point (Detectron2's PascalVOCDetectionEvaluator for year 2007, as registered by
#   register_voc_folder's default): r = 0, .1, .2, .3 get 1; r = .4, .5, .6 get 2/3; .7..1 get 0
#   -> AP50 = (4 + 3 * 2/3) / 11 = 6/11 = 54.545%.
# VOC2010+ area under the envelope (any other year): 1/3 * 1 + 1/3 * 2/3 = 5/9 = 55.556%.
# At t >= 0.65 no detection matches: AP_t = 0, so AP75 = 0 and AP = 3/10 * AP50.
THREE_COCO = {"AP50": 100 * 56 / 101, "AP75": 0.0, "AP": 0.3 * 100 * 56 / 101}
THREE_VOC07 = {"AP50": 100 * 6 / 11, "AP75": 0.0, "AP": 0.3 * 100 * 6 / 11}
THREE_VOC_AREA = {"AP50": 100 * 5 / 9, "AP75": 0.0, "AP": 0.3 * 100 * 5 / 9}
PREDICTIONS = {"one": [(D1, 0.90)], "three": [(D1, 0.90), (FP, 0.85), (D2, 0.80)]}


def _square_polygon(box):
    x0, y0, x1, y1 = box
    return [x0, y0, x1, y0, x1, y1, x0, y1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The two images in COCO layout (one json per split) and in one VOC folder (two splits)."""
    import json
    import xml.etree.ElementTree as ET

    root = tmp_path_factory.mktemp("handcomputed")
    voc = root / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    (root / "images").mkdir()
    paths = {"voc": str(voc)}
    for split, (image_id, objects) in IMAGES.items():
        name = f"{image_id:06d}"
        image = Image.new("RGB", (W, H), (90, 90, 90))
        image.save(root / "images" / f"{name}.jpg")
        image.save(voc / "JPEGImages" / f"{name}.jpg")
        # an empty second scene in each VOC split: Detectron2 v0.6's VOC loader cannot read a
        # one-line split file (np.loadtxt gives a 0-d array); it adds no object and no detection
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text(f"{name}\n{EMPTY}\n")
        xml = ET.Element("annotation")
        size = ET.SubElement(xml, "size")
        for tag, value in (("width", W), ("height", H), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        annotations = []
        for k, (x0, y0, x1, y1) in enumerate(objects):
            obj = ET.SubElement(xml, "object")
            for tag, value in (("name", "box"), ("pose", "Unspecified"), ("truncated", "0"),
                               ("difficult", "0")):
                ET.SubElement(obj, tag).text = value
            bndbox = ET.SubElement(obj, "bndbox")
            for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
                ET.SubElement(bndbox, tag).text = str(value)
            annotations.append({"id": 10 * image_id + k, "image_id": image_id, "category_id": 7,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                "iscrowd": 0, "segmentation": [_square_polygon((x0, y0, x1, y1))]})
        ET.ElementTree(xml).write(voc / "Annotations" / f"{name}.xml")
        coco = {"images": [{"id": image_id, "file_name": f"{name}.jpg", "height": H, "width": W}],
                "annotations": annotations,
                "categories": [{"id": 7, "name": "box", "supercategory": "shape"}]}
        paths[f"coco_{split}"] = str(root / f"instances_{split}.json")
        (root / f"instances_{split}.json").write_text(json.dumps(coco))
    Image.new("RGB", (W, H), (90, 90, 90)).save(voc / "JPEGImages" / f"{EMPTY}.jpg")
    xml = ET.Element("annotation")
    size = ET.SubElement(xml, "size")
    for tag, value in (("width", W), ("height", H), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.ElementTree(xml).write(voc / "Annotations" / f"{EMPTY}.xml")
    paths["images"] = str(root / "images")
    return paths


def _register(data, layout, split, year=2007):
    name = f"hand_{layout}_{split}_{year}_{uuid.uuid4().hex[:8]}"
    if layout == "coco":
        register_coco_folder(name, data[f"coco_{split}"], data["images"])
    else:
        register_voc_folder(name, data["voc"], split, year=year)
    records = DatasetCatalog.get(name)  # also sets the COCO id mapping the evaluator needs
    image_id = IMAGES[split][0]
    found = [r for r in records if str(r["image_id"]) in (str(image_id), f"{image_id:06d}")]
    assert len(found) == 1 and len(records) == (1 if layout == "coco" else 2)
    return name, found[0]


def _evaluate(evaluator, record, predictions, masks=None):
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(torch.tensor([box for box, _ in predictions], dtype=torch.float32))
    inst.scores = torch.tensor([score for _, score in predictions])
    inst.pred_classes = torch.zeros(len(predictions), dtype=torch.int64)  # the one class
    if masks is not None:
        inst.pred_masks = torch.from_numpy(np.stack(masks))
    evaluator.reset()
    evaluator.process([record], [{"instances": inst}])
    return evaluator.evaluate()


def _cfg(tmp_path, mask_on=False):
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = mask_on
    cfg.OUTPUT_DIR = str(tmp_path)
    return cfg


def _assert_ap(results, expected):
    got = {k: results[k] for k in expected}
    assert got == pytest.approx(expected, abs=1e-6), got


def test_registered_datasets_hold_the_hand_written_boxes(data):
    """Detectron2's loaders, as registered by us: VOC's 1-based XML and COCO's XYWH json become
    the same pixel-edge boxes."""
    for layout in ("voc", "coco"):
        _, record = _register(data, layout, "three")
        boxes = [tuple(BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS))
                 for a in record["annotations"]]
        assert boxes == [G1, G2, G3], layout
        assert [a["category_id"] for a in record["annotations"]] == [0, 0, 0]


@pytest.mark.parametrize("layout", ["coco", "voc"])
def test_iou_0_6_counts_at_ap50_not_at_ap75(data, tmp_path, layout):
    name, record = _register(data, layout, "one")
    evaluator = build_evaluator(_cfg(tmp_path), name)
    assert isinstance(evaluator, {"coco": COCOEvaluator, "voc": PascalVOCDetectionEvaluator}[layout])
    _assert_ap(_evaluate(evaluator, record, PREDICTIONS["one"])["bbox"], ONE)


def test_coco_false_positive_and_miss_give_the_101_point_ap(data, tmp_path):
    name, record = _register(data, "coco", "three")
    results = _evaluate(build_evaluator(_cfg(tmp_path), name), record, PREDICTIONS["three"])
    _assert_ap(results["bbox"], THREE_COCO)


@pytest.mark.parametrize("year, expected", [(2007, THREE_VOC07), (2012, THREE_VOC_AREA)])
def test_voc_false_positive_and_miss_give_the_years_ap(data, tmp_path, year, expected):
    """VOC2007 (the project's default and the demo's) is the 11-point AP; other years the area."""
    name, record = _register(data, "voc", "three", year=year)
    results = _evaluate(build_evaluator(_cfg(tmp_path), name), record, PREDICTIONS["three"])
    _assert_ap(results["bbox"], expected)


def test_coco_mask_ap_at_a_hand_measured_iou(data, tmp_path):
    """A mask: g1's own rasterised polygon moved 12 rows down. Its IoU with g1 is counted in pixels
    here (numpy), then AP follows as above: AP50 = 100, AP75 = 0, AP = 10 x (thresholds <= IoU)."""
    name, record = _register(data, "coco", "one")
    rle = mask_util.frPyObjects([_square_polygon(G1)], H, W)
    truth = mask_util.decode(mask_util.merge(rle)).astype(bool)
    moved = np.zeros_like(truth)
    moved[12:] = truth[:-12]
    iou = (truth & moved).sum() / (truth | moved).sum()
    thresholds = np.linspace(0.5, 0.95, 10)
    assert 0.6 < iou < 0.65 and not np.isclose(thresholds, iou).any()  # the hand case holds
    evaluator = build_evaluator(_cfg(tmp_path, mask_on=True), name)
    results = _evaluate(evaluator, record, [((10, 22, 60, 72), 0.9)], masks=[moved])
    _assert_ap(results["segm"], {"AP50": 100.0, "AP75": 0.0,
                                 "AP": 100.0 * float((thresholds <= iou).sum()) / 10})
    _assert_ap(results["bbox"], ONE)  # the box moved down by 12 px: IoU 38/62 again
