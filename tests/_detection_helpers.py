"""Tiny detection data in COCO and VOC layout, and config overrides that keep detectors cheap.

Scenes are real JPEGs of coloured squares and discs on a noisy background; COCO json carries
polygon masks, VOC has XML (1-based inclusive boxes) and ImageSets/Main split lists. The same
scenes are written in both layouts so the two evaluators see the same objects.
"""
import json
import math
import os
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("square", "disc")
COCO_IDS = {"square": 1, "disc": 3}  # not contiguous on purpose: Detectron2 must map them
HEIGHT, WIDTH = 96, 128

# Keeps head structure (FPN levels, 4conv1fc box head, mask head, ExtraNorm) but tiny widths.
TINY_RESNET = [  # bottleneck ResNets only: R-18/34 require RES2_OUT_CHANNELS 64
    "MODEL.RESNETS.WIDTH_PER_GROUP", "8", "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "16",
]
TINY_HEADS = [
    "MODEL.DEVICE", "cpu", "MODEL.FPN.OUT_CHANNELS", "32",
    "MODEL.ROI_BOX_HEAD.CONV_DIM", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64",
    "MODEL.ROI_MASK_HEAD.CONV_DIM", "32",
]
TINY_MODEL = TINY_HEADS + TINY_RESNET
# A few cheap iterations on 96x128 images, PreciseBN kept on but over one batch.
TINY_RUN = [
    "INPUT.MIN_SIZE_TRAIN", f"({HEIGHT},)", "INPUT.MAX_SIZE_TRAIN", str(WIDTH),
    "INPUT.MIN_SIZE_TEST", str(HEIGHT), "INPUT.MAX_SIZE_TEST", str(WIDTH),
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "SOLVER.BASE_LR", "0.002",
    "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "1000",
    "DATALOADER.NUM_WORKERS", "0",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "64", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "32",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "64", "MODEL.RPN.POST_NMS_TOPK_TEST", "32",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.ROI_HEADS.NUM_CLASSES", str(len(CLASSES)),
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "20",
    "TEST.PRECISE_BN.NUM_ITER", "1",
]


def _polygon(kind, cx, cy, r):
    if kind == "square":
        return [cx - r, cy - r, cx + r, cy - r, cx + r, cy + r, cx - r, cy + r]
    points = []
    for k in range(12):
        a = 2 * math.pi * k / 12
        points += [round(cx + r * math.cos(a), 1), round(cy + r * math.sin(a), 1)]
    return points


def _scene(rng, index):
    """An image and its objects: (class name, polygon) with one square and one disc."""
    noise = rng.integers(60, 120, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    draw = ImageDraw.Draw(image)
    objects = []
    centres = [(32, 48), (92, 48)] if index % 2 == 0 else [(92, 44), (34, 52)]
    for kind, (cx, cy), colour in zip(CLASSES, centres, [(230, 40, 40), (40, 40, 230)]):
        r = int(rng.integers(14, 22))
        poly = _polygon(kind, cx, cy, r)
        draw.polygon(poly, fill=colour)
        objects.append((kind, poly))
    return image, objects


def _bbox(poly):
    xs, ys = poly[0::2], poly[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def make_detection_data(root, n_train=4, n_test=2, seed=0, coco_categories=False):
    """Write the scenes under ``root`` as ``coco/`` (train2017/val2017 + annotations) and
    ``VOC2007/`` (trainval/test): the layout Detectron2's builtin names expect. Returns paths.

    ``coco_categories`` lists COCO's 80 categories in the json (the objects then count as COCO's
    ids 1 and 3, "person" and "car"), as the builtin ``coco_2017_*`` names require."""
    rng = np.random.default_rng(seed)
    coco = os.path.join(root, "coco")
    voc = os.path.join(root, "VOC2007")
    for sub in ("annotations", "train2017", "val2017"):
        os.makedirs(os.path.join(coco, sub), exist_ok=True)
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc, sub), exist_ok=True)
    categories = [{"id": COCO_IDS[c], "name": c, "supercategory": "shape"} for c in CLASSES]
    if coco_categories:
        from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

        categories = [{"id": c["id"], "name": c["name"], "supercategory": "thing"}
                      for c in COCO_CATEGORIES if c["isthing"]]
    splits = {"train2017": ("trainval", n_train), "val2017": ("test", n_test)}
    index, ann_id = 0, 1
    for coco_split, (voc_split, count) in splits.items():
        images, annotations, ids = [], [], []
        for _ in range(count):
            index += 1
            image, objects = _scene(rng, index)
            name = f"{index:06d}"
            ids.append(name)
            image.save(os.path.join(coco, coco_split, name + ".jpg"), quality=95)
            image.save(os.path.join(voc, "JPEGImages", name + ".jpg"), quality=95)
            images.append({"id": index, "file_name": name + ".jpg", "height": HEIGHT, "width": WIDTH})
            xml = ET.Element("annotation")
            ET.SubElement(xml, "filename").text = name + ".jpg"
            size = ET.SubElement(xml, "size")
            for tag, value in (("width", WIDTH), ("height", HEIGHT), ("depth", 3)):
                ET.SubElement(size, tag).text = str(value)
            for kind, poly in objects:
                x0, y0, x1, y1 = _bbox(poly)
                annotations.append({
                    "id": ann_id, "image_id": index, "category_id": COCO_IDS[kind],
                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float((x1 - x0) * (y1 - y0)),
                    "iscrowd": 0, "segmentation": [poly],
                })
                ann_id += 1
                obj = ET.SubElement(xml, "object")
                ET.SubElement(obj, "name").text = kind
                ET.SubElement(obj, "pose").text = "Unspecified"
                ET.SubElement(obj, "truncated").text = "0"
                ET.SubElement(obj, "difficult").text = "0"
                box = ET.SubElement(obj, "bndbox")
                # VOC boxes are 1-based inclusive pixel indices
                for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
                    ET.SubElement(box, tag).text = str(int(round(value)))
            ET.ElementTree(xml).write(os.path.join(voc, "Annotations", name + ".xml"))
        with open(os.path.join(coco, "annotations", f"instances_{coco_split}.json"), "w") as f:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
        with open(os.path.join(voc, "ImageSets", "Main", voc_split + ".txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    return {
        "root": root,
        "coco_train_json": os.path.join(coco, "annotations", "instances_train2017.json"),
        "coco_val_json": os.path.join(coco, "annotations", "instances_val2017.json"),
        "coco_train_images": os.path.join(coco, "train2017"),
        "coco_val_images": os.path.join(coco, "val2017"),
        "voc_dir": voc,
    }
