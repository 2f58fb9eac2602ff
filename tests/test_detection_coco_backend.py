"""faster-coco-eval, our COCO backend without ``detectron2._C``, gives pycocotools' numbers.

The oracle is pycocotools' own ``COCOeval`` on the same json. The generated set is deliberately
imperfect: boxes at many IoUs, duplicates, wrong classes, false positives, missed objects, three
non-contiguous category ids, objects in all three COCO size ranges, crowd regions (uncompressed
RLE, with detections inside them that must be ignored) and masks as RLE.
"""
import contextlib
import copy
import io
import json
import os
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation import coco_evaluation as d2_coco_evaluation
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from infomin.detection import build_evaluator, has_compiled_ops, register_coco_folder
from infomin.detection import coco_evaluation
from infomin.detection.coco_evaluation import FasterCOCOEvaluator, FasterCOCOeval

CATEGORY_IDS = (1, 3, 7)
HEIGHT, WIDTH = 160, 200


def _octagon(x, y, w, h):
    c = 0.2 * min(w, h)
    poly = [x + c, y, x + w - c, y, x + w, y + c, x + w, y + h - c,
            x + w - c, y + h, x + c, y + h, x, y + h - c, x, y + c]
    return [float(v) for v in poly], float(w * h - 2 * c * c)


def _ellipse_mask(x, y, w, h):
    yy, xx = np.mgrid[:HEIGHT, :WIDTH] + 0.5
    return ((xx - x - w / 2) / (w / 2)) ** 2 + ((yy - y - h / 2) / (h / 2)) ** 2 <= 1.0


def _uncompressed_rle(mask):
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": [HEIGHT, WIDTH]}


def _random_box(rng, size):
    lo, hi = {"small": (8, 28), "medium": (36, 90), "large": (100, 150)}[size]
    w, h = rng.uniform(lo, hi, 2)
    return [rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h), w, h]


def make_coco_set(seed=0, n_images=20):
    """(ground-truth json dict, detections: list of dicts with a bool ``mask``)."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for img_id in range(1, n_images + 1):
        images.append({"id": img_id, "file_name": f"{img_id}.jpg", "height": HEIGHT, "width": WIDTH})
        n_gt = 0 if img_id == n_images else int(rng.integers(1, 5))  # last image: nothing to find
        for _ in range(n_gt):
            box = _random_box(rng, rng.choice(["small", "medium", "large"], p=[0.4, 0.4, 0.2]))
            poly, area = _octagon(*box)
            cat = int(rng.choice(CATEGORY_IDS))
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat, "bbox": box,
                         "segmentation": [poly], "area": area, "iscrowd": 0})
            if rng.random() < 0.2:  # missed
                continue
            for dup in range(1 + int(rng.random() < 0.25)):  # some duplicates: false positives
                x, y, w, h = box
                shift = rng.uniform(0.0, 0.3)  # IoU from ~1 down to under 0.5
                sx, sy = rng.choice([-1, 1], 2) * shift * np.array([w, h]) * rng.uniform(0.3, 1.0, 2)
                sw, sh = np.exp(rng.normal(0, 0.1, 2))
                dw, dh = min(w * sw, WIDTH - 1), min(h * sh, HEIGHT - 1)
                dx = float(np.clip(x + sx, 0, WIDTH - dw))
                dy = float(np.clip(y + sy, 0, HEIGHT - dh))
                dcat = cat if rng.random() > 0.1 else int(rng.choice([c for c in CATEGORY_IDS if c != cat]))
                dets.append({"image_id": img_id, "category_id": dcat, "bbox": [dx, dy, dw, dh],
                             "score": float(rng.uniform(0.3, 1.0) / (1 + dup))})
        if img_id % 3 == 0:  # a crowd region, and detections inside it (neither TP nor FP)
            box = [20.0, 30.0, 120.0, 90.0]
            crowd = np.zeros((HEIGHT, WIDTH), bool)
            crowd[30:120, 20:140] = True
            crowd[60:80, 50:90] = False
            cat = CATEGORY_IDS[img_id % 2]
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat, "bbox": box,
                         "segmentation": _uncompressed_rle(crowd), "area": float(crowd.sum()), "iscrowd": 1})
            for _ in range(3):
                dets.append({"image_id": img_id, "category_id": cat, "score": float(rng.uniform(0.2, 0.9)),
                             "bbox": [float(rng.uniform(25, 90)), float(rng.uniform(35, 80)), 30.0, 25.0]})
        for _ in range(int(rng.integers(0, 4))):  # false positives anywhere
            dets.append({"image_id": img_id, "category_id": int(rng.choice(CATEGORY_IDS)),
                         "bbox": _random_box(rng, rng.choice(["small", "medium"])),
                         "score": float(rng.uniform(0.05, 0.8))})
    for det in dets:
        det["mask"] = _ellipse_mask(*det["bbox"])
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]}
    return gt, dets


def coco_results(dets, iou_type):
    """Detections in COCO's result format, as Detectron2 hands them to COCOeval."""
    out = []
    for d in dets:
        r = {"image_id": d["image_id"], "category_id": d["category_id"], "score": d["score"]}
        if iou_type == "bbox":
            r["bbox"] = d["bbox"]
        else:  # Detectron2 drops the box for segm so areas come from the mask
            rle = mask_util.encode(np.asfortranarray(d["mask"].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            r["segmentation"] = rle
        out.append(r)
    return out


def run_cocoeval(evaluator_class, gt_file, results, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_file)  # a fresh copy for each backend: both annotate gt dicts in place
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes adds keys to the dicts
        coco_eval = evaluator_class(coco_gt, coco_dt, iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return np.asarray(coco_eval.stats, dtype=float)


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco_backend")
    gt, dets = make_coco_set()
    gt_file = str(folder / "instances.json")
    with open(gt_file, "w") as f:
        json.dump(gt, f)
    os.makedirs(folder / "images")
    return {"gt_file": gt_file, "gt": gt, "dets": dets, "image_root": str(folder / "images")}


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_faster_cocoeval_matches_pycocotools(coco_set, iou_type):
    results = coco_results(coco_set["dets"], iou_type)
    oracle = run_cocoeval(COCOeval, coco_set["gt_file"], results, iou_type)
    faster = run_cocoeval(FasterCOCOeval, coco_set["gt_file"], results, iou_type)
    assert oracle.shape == faster.shape == (12,)
    assert 0.05 < oracle[0] < 0.95, oracle  # an imperfect set, not a trivial 0 or 1
    assert (oracle >= 0).all(), oracle  # every size range has objects: no stat is -1 ("absent")
    np.testing.assert_allclose(faster, oracle, rtol=0, atol=1e-4)


def test_crowd_regions_are_ignored_not_false_positives(coco_set):
    """Guards the set itself: without iscrowd the detections in crowd regions change the stats."""
    results = coco_results(coco_set["dets"], "bbox")
    oracle = run_cocoeval(COCOeval, coco_set["gt_file"], results, "bbox")
    no_crowd = dict(coco_set["gt"], annotations=[dict(a, iscrowd=0) for a in coco_set["gt"]["annotations"]])
    path = coco_set["gt_file"].replace(".json", "_nocrowd.json")
    with open(path, "w") as f:
        json.dump(no_crowd, f)
    assert np.abs(run_cocoeval(COCOeval, path, results, "bbox") - oracle).max() > 1e-3


def _fresh_backend(monkeypatch, *, compiled, faster_installed=True):
    coco_evaluation.coco_eval_backend.cache_clear()
    monkeypatch.setattr(coco_evaluation, "has_compiled_ops", lambda: compiled)
    if not faster_installed:
        monkeypatch.setattr(coco_evaluation, "_faster_coco_eval_class", lambda: None)


@pytest.fixture
def registered(coco_set):
    name = register_coco_folder(f"coco_backend_{uuid.uuid4().hex}", coco_set["gt_file"], coco_set["image_root"])
    DatasetCatalog.get(name)  # as the data loader does: sets the category id mapping
    yield name
    coco_evaluation.coco_eval_backend.cache_clear()


def _cfg(tmp_path):
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.OUTPUT_DIR = str(tmp_path)
    return cfg


def test_build_evaluator_picks_faster_coco_eval_without_compiled_ops(registered, tmp_path, caplog):
    if has_compiled_ops():
        pytest.skip("detectron2._C is built here: Detectron2's own fast evaluator is used")
    coco_evaluation.coco_eval_backend.cache_clear()
    with caplog.at_level("INFO", logger="infomin.detection.coco_evaluation"):
        evaluator = build_evaluator(_cfg(tmp_path), registered)
        build_evaluator(_cfg(tmp_path), registered)
    assert type(evaluator) is FasterCOCOEvaluator
    assert evaluator._use_fast_impl
    backend_lines = [r.getMessage() for r in caplog.records if "COCO evaluation backend" in r.getMessage()]
    assert len(backend_lines) == 1 and "faster-coco-eval" in backend_lines[0]


def test_backend_choice_follows_what_is_installed(registered, tmp_path, monkeypatch):
    _fresh_backend(monkeypatch, compiled=True)
    evaluator = build_evaluator(_cfg(tmp_path), registered)
    assert type(evaluator) is COCOEvaluator  # Detectron2's own path, untouched
    _fresh_backend(monkeypatch, compiled=False, faster_installed=False)
    evaluator = build_evaluator(_cfg(tmp_path), registered)
    assert type(evaluator) is COCOEvaluator and not evaluator._use_fast_impl  # pycocotools


def _fake_outputs(dets, dataset_name):
    to_contiguous = MetadataCatalog.get(dataset_name).thing_dataset_id_to_contiguous_id
    outputs = []
    for record in DatasetCatalog.get(dataset_name):
        mine = [d for d in dets if d["image_id"] == record["image_id"]]
        inst = Instances((HEIGHT, WIDTH))
        inst.pred_boxes = Boxes(torch.tensor([[x, y, x + w, y + h] for x, y, w, h in
                                              (d["bbox"] for d in mine)], dtype=torch.float32).reshape(-1, 4))
        inst.scores = torch.tensor([d["score"] for d in mine], dtype=torch.float32)
        inst.pred_classes = torch.tensor([to_contiguous[d["category_id"]] for d in mine], dtype=torch.int64)
        inst.pred_masks = torch.from_numpy(np.stack([d["mask"] for d in mine]) if mine
                                           else np.zeros((0, HEIGHT, WIDTH), bool))
        outputs.append(({"image_id": record["image_id"]}, {"instances": inst}))
    return outputs


def _run(evaluator, outputs):
    evaluator.reset()
    for inp, out in outputs:
        evaluator.process([inp], [out])
    with contextlib.redirect_stdout(io.StringIO()):
        return evaluator.evaluate()


def test_detectron2_evaluation_run_gives_pycocotools_ap(coco_set, registered, tmp_path, monkeypatch):
    outputs = _fake_outputs(coco_set["dets"], registered)
    built = []  # which evaluations faster-coco-eval computed

    def spy(coco_gt, coco_dt, iou_type):
        built.append(iou_type)
        return FasterCOCOeval(coco_gt, coco_dt, iou_type)

    monkeypatch.setattr(coco_evaluation, "FasterCOCOeval", spy)
    faster = FasterCOCOEvaluator(registered, tasks=("bbox", "segm"), output_dir=str(tmp_path / "faster"))
    results = _run(faster, outputs)
    assert built == ["bbox", "segm"]
    assert d2_coco_evaluation.COCOeval_opt.__module__ == "detectron2.evaluation.fast_eval_api"  # restored
    official = COCOEvaluator(registered, tasks=("bbox", "segm"), output_dir=str(tmp_path / "official"),
                             use_fast_impl=False)
    expected = _run(official, outputs)
    # the oracle: pycocotools on the results json the evaluator wrote itself
    with open(tmp_path / "faster" / "coco_instances_results.json") as f:
        written = json.load(f)
    for task in ("bbox", "segm"):
        task_results = [{k: v for k, v in r.items() if not (task == "segm" and k == "bbox")} for r in written]
        oracle = run_cocoeval(COCOeval, coco_set["gt_file"], task_results, task)
        assert results[task]["AP"] == pytest.approx(100 * oracle[0], abs=1e-2)
        assert results[task]["APs"] == pytest.approx(100 * oracle[3], abs=1e-2)
        assert set(results[task]) == set(expected[task])  # per-category AP included
        for key, value in expected[task].items():
            assert results[task][key] == pytest.approx(value, abs=1e-2), (task, key)
