"""COCO evaluation time: pycocotools' COCOeval vs faster-coco-eval, as our COCOEvaluator runs them.

Without ``detectron2._C`` our trainer evaluates COCO with faster-coco-eval instead of pycocotools
(``infomin.detection.coco_evaluation``). This times both on the same generated set the size of COCO
val2017 (5,000 images, ~7.3 objects per image -> ~36k ground-truth boxes, 80 categories, ~1% crowd
regions, 100 detections per image -> 500k detections: jittered copies of the objects at many IoUs,
wrong classes and low-scored false positives) and reports each one's time, the ratio and the
largest absolute difference over the 12 summary stats.

Each backend gets a fresh ground-truth ``pycocotools.coco.COCO`` (built untimed) and is timed over
what Detectron2's ``_evaluate_predictions_on_coco`` does: ``loadRes`` (pycocotools for both, as in
Detectron2; reported apart since it is the same code) and the evaluation proper (``evaluate``,
``accumulate``, ``summarize``: the part the backend replaces). Wall time and this process's CPU
time (all threads) are both reported; the speed-up is the evaluation's.

    python benchmarks/bench_coco_eval.py                    # COCO val size, bbox
    python benchmarks/bench_coco_eval.py --images 1000      # scaled down
    python benchmarks/bench_coco_eval.py --segm --images 200  # masks (RLE results, polygon gt)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import time

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from infomin.device import cpu_name

HEIGHT, WIDTH = 480, 640
N_CATEGORIES = 80



def _polygon(box, sides=12):
    """An ellipse-like polygon inscribed in an xywh box (what a mask outline looks like)."""
    x, y, w, h = box
    t = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    px = x + w / 2 + (w / 2) * np.cos(t)
    py = y + h / 2 + (h / 2) * np.sin(t)
    return np.stack([px, py], 1).ravel().tolist()


def generate(n_images: int, dets_per_image: int, seed: int, segm: bool):
    """(ground-truth dict, results list) in COCO's formats."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for img_id in range(1, n_images + 1):
        images.append({"id": img_id, "file_name": f"{img_id:012d}.jpg", "height": HEIGHT, "width": WIDTH})
        n = int(rng.poisson(7.3))
        # log-uniform sizes: COCO's mix of small, medium and large objects
        wh = np.exp(rng.uniform(np.log(6), np.log(400), (n, 2)))
        wh = np.minimum(wh, [WIDTH - 1, HEIGHT - 1])
        xy = rng.uniform(0, 1, (n, 2)) * ([WIDTH, HEIGHT] - wh)
        cats = rng.integers(1, N_CATEGORIES + 1, n)
        crowd = rng.random(n) < 0.01
        boxes = []
        for k in range(n):
            box = [float(xy[k, 0]), float(xy[k, 1]), float(wh[k, 0]), float(wh[k, 1])]
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": int(cats[k]), "bbox": box,
                   "iscrowd": int(crowd[k]), "area": float(np.pi / 4 * wh[k, 0] * wh[k, 1])}
            if segm:
                poly = [_polygon(box)]
                ann["segmentation"] = mask_util.frPyObjects(poly, HEIGHT, WIDTH)[0] if crowd[k] else poly
                if crowd[k]:
                    ann["segmentation"]["counts"] = ann["segmentation"]["counts"].decode("ascii")
            anns.append(ann)
            boxes.append(box)
        # detections: 1-4 jittered copies per object, the rest false positives with lower scores
        dets = []
        for k, (x, y, w, h) in enumerate(boxes):
            for _ in range(int(rng.integers(1, 5))):
                s = rng.normal(0, 0.15, 4)
                dw, dh = w * np.exp(s[2]), h * np.exp(s[3])
                cat = int(cats[k]) if rng.random() > 0.1 else int(rng.integers(1, N_CATEGORIES + 1))
                dets.append((x + s[0] * w, y + s[1] * h, dw, dh, cat, rng.uniform(0.2, 1.0)))
        while len(dets) < dets_per_image:
            w, h = np.exp(rng.uniform(np.log(6), np.log(300), 2))
            dets.append((rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h), w, h,
                         int(rng.integers(1, N_CATEGORIES + 1)), rng.uniform(0.0, 0.6)))
        for x, y, w, h, cat, score in dets[:dets_per_image]:
            x, y = float(np.clip(x, 0, WIDTH - 1)), float(np.clip(y, 0, HEIGHT - 1))
            w, h = float(min(w, WIDTH - x)), float(min(h, HEIGHT - y))
            r = {"image_id": img_id, "category_id": cat, "score": float(score)}
            if segm:  # Detectron2 hands segm results over as compressed RLE, without the box
                rle = mask_util.merge(mask_util.frPyObjects([_polygon((x, y, w, h))], HEIGHT, WIDTH))
                rle["counts"] = rle["counts"].decode("ascii")
                r["segmentation"] = rle
            else:
                r["bbox"] = [x, y, w, h]
            results.append(r)
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, N_CATEGORIES + 1)]
    return {"images": images, "annotations": anns, "categories": categories}, results


def _coco(gt: dict) -> COCO:
    coco = COCO()
    coco.dataset = json.loads(json.dumps(gt))  # a private copy: evaluators annotate it in place
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def time_backend(evaluator_class, gt: dict, results: list, iou_type: str):
    """Wall and CPU seconds of loadRes and of evaluate + accumulate + summarize, and the stats."""
    coco_gt = _coco(gt)
    mine = [dict(r) for r in results]  # loadRes adds keys to the dicts
    clocks = [(time.perf_counter(), time.process_time())]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(mine)
        clocks.append((time.perf_counter(), time.process_time()))
        coco_eval = evaluator_class(coco_gt, coco_dt, iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    clocks.append((time.perf_counter(), time.process_time()))
    (w0, c0), (w1, c1), (w2, c2) = clocks
    return {"loadres_wall_s": w1 - w0, "eval_wall_s": w2 - w1, "wall_s": w2 - w0,
            "loadres_cpu_s": c1 - c0, "eval_cpu_s": c2 - c1, "cpu_s": c2 - c0,
            "stats": np.asarray(coco_eval.stats, float).tolist()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=None,
                    help="number of images (default 5000 for bbox, 500 with --segm)")
    ap.add_argument("--dets-per-image", type=int, default=100, help="detections per image (default 100)")
    ap.add_argument("--segm", action="store_true", help="evaluate masks (RLE results) instead of boxes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the figures to this json file")
    args = ap.parse_args(argv)
    n_images = args.images or (500 if args.segm else 5000)
    if n_images < 1 or args.dets_per_image < 1:
        ap.error("--images and --dets-per-image must be at least 1")
    try:
        from infomin.detection.coco_evaluation import FasterCOCOeval
    except ImportError as exc:
        raise SystemExit(f"cannot import infomin.detection.coco_evaluation ({exc}): run `make setup` first")
    iou_type = "segm" if args.segm else "bbox"

    t0 = time.perf_counter()
    gt, results = generate(n_images, args.dets_per_image, args.seed, args.segm)
    print(f"generated {n_images} images, {len(gt['annotations'])} gt objects "
          f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd), {len(results)} detections, "
          f"iouType={iou_type} in {time.perf_counter() - t0:.1f} s")

    from importlib.metadata import version
    rows = {}
    for name, cls in (("pycocotools", COCOeval), ("faster-coco-eval", FasterCOCOeval)):
        r = rows[name] = time_backend(cls, gt, results, iou_type)
        print(f"{name:>17}: evaluation {r['eval_wall_s']:7.2f} s wall ({r['eval_cpu_s']:7.2f} s CPU), "
              f"with loadRes {r['wall_s']:7.2f} s wall ({r['cpu_s']:7.2f} s CPU)   "
              f"AP={r['stats'][0]:.4f} AP50={r['stats'][1]:.4f}")
    diff = float(np.abs(np.subtract(rows["pycocotools"]["stats"], rows["faster-coco-eval"]["stats"])).max())
    slow, fast = rows["pycocotools"], rows["faster-coco-eval"]
    ratio = slow["eval_wall_s"] / fast["eval_wall_s"]
    cpu_ratio = slow["eval_cpu_s"] / fast["eval_cpu_s"]
    total_ratio = slow["wall_s"] / fast["wall_s"]
    machine = (f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs visible, "
               f"load average {os.getloadavg()[0]:.1f}; Python {platform.python_version()}, "
               f"pycocotools {version('pycocotools')}, faster-coco-eval {version('faster-coco-eval')}")
    print(f"speed-up of the evaluation: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU; with loadRes (pycocotools "
          f"for both, as in Detectron2): {total_ratio:.1f}x wall; largest |stat difference| over the "
          f"12 stats: {diff:.2e}")
    print(f"machine: {machine}")
    report = {"images": n_images, "gt_objects": len(gt["annotations"]), "detections": len(results),
              "iou_type": iou_type, "backends": rows, "ratio_wall": ratio, "ratio_cpu": cpu_ratio, "ratio_wall_with_loadres": total_ratio,
              "max_abs_stat_diff": diff, "machine": machine}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
