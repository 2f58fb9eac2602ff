"""The built-in dataset, checked through the loaders real data goes through.

Oracles: torchvision's ImageFolder, Detectron2's `load_coco_json` / `load_voc_instances`,
pycocotools' own polygon rasterizer, and the JPEG files' real sizes.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infomin.datasets import builtin
from infomin.datasets.builtin import CLASSES, generate

SMALL = {"cls_train": 4, "cls_val": 2, "det_train": 10, "det_test": 5}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("builtin") / "data", seed=3, scale="quick",
                    overrides=SMALL, progress=False)


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_imagefolder_counts_and_classes(data):
    from torchvision.datasets import ImageFolder

    train, val = ImageFolder(data.imagefolder_train), ImageFolder(data.imagefolder_val)
    assert train.classes == sorted(CLASSES) and val.classes == sorted(CLASSES)
    assert len(train) == SMALL["cls_train"] * len(CLASSES)
    assert len(val) == SMALL["cls_val"] * len(CLASSES)
    counts = np.bincount(train.targets, minlength=len(CLASSES))
    assert (counts == SMALL["cls_train"]).all()
    image, _ = train[0]
    assert image.size == (64, 64) and image.mode == "RGB"


@pytest.mark.parametrize("split,count", [("train2017", SMALL["det_train"]),
                                         ("val2017", SMALL["det_test"])])
def test_coco_loads_through_detectron2_with_masks_matching_boxes(data, split, count):
    from detectron2.data.datasets import load_coco_json
    from detectron2.structures import BoxMode
    from pycocotools import mask as mask_util

    json_file = getattr(data, "coco_train_json" if split == "train2017" else "coco_val_json")
    image_root = os.path.join(data.root, "coco", split)
    dicts = load_coco_json(json_file, image_root, dataset_name=f"builtin_test_{split}")
    assert len(dicts) == count
    n_objects = 0
    for record in dicts:
        w, h = Image.open(record["file_name"]).size
        assert (record["width"], record["height"]) == (w, h)
        for ann in record["annotations"]:
            n_objects += 1
            assert ann["bbox_mode"] == BoxMode.XYWH_ABS
            assert 0 <= ann["category_id"] < len(CLASSES)
            x, y, bw, bh = ann["bbox"]
            assert x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h
            rle = mask_util.merge(mask_util.frPyObjects(ann["segmentation"], h, w))
            mask = mask_util.decode(rle).astype(bool)
            ys, xs = np.nonzero(mask)
            # The box is the tight box of the mask pycocotools draws from the polygons.
            assert [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()] == [
                x, y, bw, bh]
    assert n_objects >= count  # every scene holds at least one object


def test_coco_json_is_valid_for_pycocotools(data):
    from pycocotools.coco import COCO

    coco = COCO(data.coco_val_json)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert coco.annToMask(ann).sum() == ann["area"]


def test_voc_loads_through_detectron2_and_matches_coco(data):
    from detectron2.data.datasets import load_coco_json
    from detectron2.data.datasets.pascal_voc import load_voc_instances

    splits = {s: load_voc_instances(data.voc_root, s, CLASSES)
              for s in ("train", "val", "trainval", "test")}
    assert len(splits["trainval"]) == SMALL["det_train"]
    assert len(splits["train"]) + len(splits["val"]) == SMALL["det_train"]
    assert len(splits["test"]) == SMALL["det_test"]
    coco = {Path(r["file_name"]).stem: r
            for r in load_coco_json(data.coco_val_json, data.coco_val_images)}
    for record in splits["test"]:
        assert os.path.exists(record["file_name"])
        ref = coco[record["image_id"]]
        boxes = sorted(a["bbox"] for a in record["annotations"])
        # VOC's 1-based inclusive box, after Detectron2 shifts it, is COCO's box in XYXY.
        expected = sorted([float(x), float(y), float(x + w), float(y + h)]
                          for x, y, w, h in (a["bbox"] for a in ref["annotations"]))
        assert boxes == expected
        for a in record["annotations"]:
            x0, y0, x1, y1 = a["bbox"]
            assert 0 <= x0 < x1 <= record["width"] and 0 <= y0 < y1 <= record["height"]


def test_same_seed_same_files_and_cache_reused(data, tmp_path):
    again = generate(tmp_path / "again", seed=3, scale="quick", overrides=SMALL, progress=False)
    assert _digest(again.root) == _digest(data.root)
    marker = Path(again.coco_val_json)
    before = marker.stat().st_mtime_ns
    generate(tmp_path / "again", seed=3, scale="quick", overrides=SMALL, progress=False)
    assert marker.stat().st_mtime_ns == before  # reused, not rewritten
    other = generate(tmp_path / "again", seed=4, scale="quick", overrides=SMALL, progress=False)
    assert json.loads((Path(other.root) / "manifest.json").read_text())["seed"] == 4
    assert _digest(other.root) != _digest(data.root)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".again")]  # no temp left


def test_refuses_foreign_folder_and_bad_arguments(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        generate(tmp_path, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    with pytest.raises(ValueError, match="unknown scale"):
        generate(tmp_path / "x", scale="huge")
    with pytest.raises(ValueError, match="unknown dataset parameters"):
        generate(tmp_path / "x", overrides={"nope": 1})


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(builtin, "_write_detection", boom)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "d", overrides=SMALL, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_write_imagefolder_is_generates_imagefolder_part(data, tmp_path):
    """Oracle: `generate`'s own imagefolder/ tree; a smaller class count keeps the same images of
    the classes it has, read back by torchvision's ImageFolder."""
    from torchvision.datasets import ImageFolder

    from infomin.datasets import write_imagefolder

    full = write_imagefolder(tmp_path / "full", seed=3, train_per_class=SMALL["cls_train"],
                             val_per_class=SMALL["cls_val"], size=builtin.SCALES["quick"]["cls_size"])
    assert _digest(full) == _digest(Path(data.imagefolder_train).parent)
    two = write_imagefolder(tmp_path / "two", seed=3, train_per_class=3, val_per_class=1, size=32, num_classes=2)
    train, val = ImageFolder(os.path.join(two, "train")), ImageFolder(os.path.join(two, "val"))
    assert train.classes == sorted(CLASSES[:2]) and len(train) == 6 and len(val) == 2
    assert {Image.open(p).size for p, _ in train.samples} == {(32, 32)}
    with pytest.raises(ValueError, match="num_classes must be 1..5"):
        write_imagefolder(tmp_path / "x", num_classes=6)


def _centre_spread(root):
    """Per image, the std of the 8x8 centre patch (always inside the dominant shape), per channel."""
    return [float(np.asarray(Image.open(p), np.float32)[28:36, 28:36].std(axis=(0, 1)).max())
            for p in sorted(Path(root).rglob("*.jpg"))]


def test_solid_fill_paints_shapes_flat_and_keeps_the_rest(tmp_path):
    """fill="solid": inside each shape only the generator's pixel noise (std 4) and JPEG remain,
    where the default fill's stripes, checks, dots and gradients vary far more; the classes,
    counts and backgrounds' random streams are those of the default set (same file names)."""
    from infomin.datasets import write_imagefolder

    textured = write_imagefolder(tmp_path / "t", seed=0, train_per_class=8, val_per_class=2, size=64)
    solid = write_imagefolder(tmp_path / "s", seed=0, train_per_class=8, val_per_class=2, size=64, fill="solid")
    names = lambda root: sorted(str(p.relative_to(root)) for p in Path(root).rglob("*.jpg"))  # noqa: E731
    assert names(textured) == names(solid) and len(names(solid)) == 50
    flat, patterned = _centre_spread(solid), _centre_spread(textured)
    assert np.median(flat) < 8 and max(patterned) > 30, (flat, patterned)
    with pytest.raises(ValueError, match="fill must be one of"):
        write_imagefolder(tmp_path / "x", fill="striped")


def test_view_data_sets_and_fill_override(tmp_path):
    data = generate(tmp_path / "s", seed=1, scale="quick", overrides={**SMALL, "cls_fill": "solid"}, progress=False)
    manifest = json.loads((Path(data.root) / "manifest.json").read_text())
    assert manifest["params"]["cls_fill"] == "solid"
    default = generate(tmp_path / "d", seed=1, scale="quick", overrides=SMALL, progress=False)
    assert "cls_fill" not in json.loads((Path(default.root) / "manifest.json").read_text())["params"]
    assert np.median(_centre_spread(data.imagefolder_train)) < 8
    with pytest.raises(ValueError, match="cls_fill must be one of"):
        generate(tmp_path / "x", overrides={"cls_fill": "dots"})
    with pytest.raises(ValueError, match="unknown built-in view data 'plain'.*textured, solid"):
        builtin.builtin_imagefolder(tmp_path / "y", variant="plain")
    assert builtin.VIEW_DATA["solid"] == ("study", {"cls_fill": "solid"})
