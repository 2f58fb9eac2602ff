"""The built-in dataset: synthetic scenes generated from a seed, in the layouts real data uses.

Why: a new user must see pretraining, conversion and detection work end to end without
ImageNet, COCO or VOC. `generate(root)` writes, deterministically from `seed`,

* `imagefolder/{train,val}/<class>/*.jpg`: object-centric images (one dominant shape per image,
  sometimes partly covered by another) for pretraining, kNN, linear eval and the supervised baseline;
* `coco/{train2017,val2017}/*.jpg` with `coco/annotations/instances_{train,val}2017.json`:
  multi-object scenes with polygon instance masks of the visible part of each object;
* `VOC2007/{JPEGImages,Annotations,ImageSets/Main/{train,val,trainval,test}.txt}`: the same scenes
  (trainval = COCO train2017, test = COCO val2017) as a VOC devkit.

Scenes are shapes of several classes, each with a random colour, texture, size and pose, placed
over crops of scikit-image's real photos or procedural textures, later shapes occluding earlier
ones. The result is cached: `manifest.json` records generator version, seed and scale, and the
tree is only rewritten when it is missing or was made with different settings. It is built in a
temporary sibling folder and renamed into place, so an interrupted run leaves nothing half-written.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["CLASSES", "SCALES", "GENERATOR_VERSION", "BuiltinData", "generate", "render_scene",
           "write_imagefolder", "builtin_imagefolder"]

GENERATOR_VERSION = 1
CLASSES = ("ellipse", "rectangle", "triangle", "star", "cross")
MANIFEST = "manifest.json"

# Per scale: ImageFolder images per class (train, val) and their side; scenes (train, test)
# and their side; objects per scene.
SCALES = {
    "quick": dict(cls_train=12, cls_val=4, cls_size=64, det_train=32, det_test=8, det_size=128,
                  max_objects=3),
    "full": dict(cls_train=160, cls_val=40, cls_size=64, det_train=320, det_test=80, det_size=128,
                 max_objects=4),
    # the study (`infomin-demo --scale study|gpu`): 5x the pretraining images, a larger val and test
    "study": dict(cls_train=800, cls_val=80, cls_size=64, det_train=320, det_test=160, det_size=128,
                  max_objects=4),
}
# Optional entries an `overrides` dict may add to any scale (left out of a scale's manifest unless given,
# so existing trees stay valid): cls_fill, how the ImageFolder shapes are painted (FILLS).
OPTIONAL = {"cls_fill": "textured"}
FILLS = ("textured", "solid")
# The ImageFolder sets the view tools generate when given no --data (`builtin_imagefolder`):
# "textured" the `full` scale's 800 images; "solid" the `study` scale's 4000 with every shape in one
# flat colour, so that the fill's pattern is no longer an instance cue two views share.
VIEW_DATA = {"textured": ("full", {}), "solid": ("study", {"cls_fill": "solid"})}

_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
           "camera", "brick", "grass", "gravel", "coins", "moon")
_photo_cache: list[np.ndarray] = []


@dataclass(frozen=True)
class BuiltinData:
    """Where `generate` put each layout (all absolute paths)."""

    root: str
    classes: tuple
    imagefolder_train: str
    imagefolder_val: str
    coco_train_images: str
    coco_train_json: str
    coco_val_images: str
    coco_val_json: str
    voc_root: str

    @classmethod
    def at(cls, root: str | os.PathLike) -> "BuiltinData":
        r = Path(root).resolve()
        return cls(
            root=str(r), classes=CLASSES,
            imagefolder_train=str(r / "imagefolder" / "train"),
            imagefolder_val=str(r / "imagefolder" / "val"),
            coco_train_images=str(r / "coco" / "train2017"),
            coco_train_json=str(r / "coco" / "annotations" / "instances_train2017.json"),
            coco_val_images=str(r / "coco" / "val2017"),
            coco_val_json=str(r / "coco" / "annotations" / "instances_val2017.json"),
            voc_root=str(r / "VOC2007"),
        )


# ----------------------------------------------------------------------------- rendering

def _photos() -> list[np.ndarray]:
    """scikit-image's sample photos as RGB uint8, shrunk once so crops are cheap."""
    if not _photo_cache:
        import skimage.data

        for name in _PHOTOS:
            img = getattr(skimage.data, name)()
            if img.ndim == 2:
                img = np.stack([img] * 3, axis=-1)
            pil = Image.fromarray(img[..., :3].astype(np.uint8))
            pil.thumbnail((320, 320), Image.BILINEAR)
            _photo_cache.append(np.asarray(pil))
    return _photo_cache


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv_colour(rng.random(), rng.uniform(0.45, 1.0), rng.uniform(0.35, 1.0))


def _hsv_colour(hue: float, sat: float, val: float) -> np.ndarray:
    i, f = int(hue * 6) % 6, hue * 6 - int(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    rgb = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]
    return np.array(rgb) * 255.0


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid upsampled bicubically."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float32) / 255.0


def _pattern(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A [size, size] weight map in [0, 1] used to mix two colours."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    period = rng.uniform(4, 14)
    if kind == "stripes":
        return (np.sin(2 * math.pi * u / period) > 0).astype(np.float32)
    if kind == "checker":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    if kind == "dots":
        return ((np.sin(2 * math.pi * u / period) * np.sin(2 * math.pi * v / period)) > 0.5
                ).astype(np.float32)
    if kind == "gradient":
        return (u - u.min()) / max(float(np.ptp(u)), 1.0)
    if kind == "noise":
        return _smooth_noise(rng, size, int(rng.integers(3, 9)))
    return np.zeros((size, size), np.float32)  # solid


def _texture(rng: np.random.Generator, size: int, kinds: tuple) -> np.ndarray:
    a, b = _random_colour(rng), _random_colour(rng)
    w = _pattern(rng, size, kinds[int(rng.integers(len(kinds)))])[..., None]
    return a * (1 - w) + b * w


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Half real-photo crops (random scale, flip), half procedural textures."""
    if rng.random() < 0.5:
        photo = _photos()[int(rng.integers(len(_PHOTOS)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
        out = np.asarray(crop, np.float32)
        return out[:, ::-1] if rng.random() < 0.5 else out
    tex = _texture(rng, size, ("stripes", "checker", "gradient", "noise", "noise"))
    # Background textures are muted so shapes stay the salient thing, as in real photos.
    return 0.6 * tex + 0.4 * tex.mean(axis=(0, 1), keepdims=True)


def _outline(cls: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-size polygon (N, 2) of a shape class, centred on the origin, before pose."""
    if cls == "ellipse":
        t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
        ratio = rng.uniform(0.55, 1.0)
        return np.stack([np.cos(t), ratio * np.sin(t)], 1)
    if cls == "rectangle":
        ratio = rng.uniform(0.45, 1.0)
        return np.array([[-1, -ratio], [1, -ratio], [1, ratio], [-1, ratio]], float)
    if cls == "triangle":
        t = math.pi / 2 + np.array([0, 2, 4]) * math.pi / 3 + rng.uniform(-0.2, 0.2, 3)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if cls == "star":
        t = np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if cls == "cross":
        a = rng.uniform(0.25, 0.38)
        return np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1],
                         [-a, a], [-1, a], [-1, -a], [-a, -a]], float)
    raise ValueError(f"unknown shape class {cls!r}; expected one of {CLASSES}")


def _shape_mask(cls: str, rng: np.random.Generator, size: int, centre, radius: float) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pts = _outline(cls, rng) @ rot.T * radius + np.asarray(centre)
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in pts], fill=1)
    return np.asarray(canvas, bool)


def render_scene(rng: np.random.Generator, size: int, n_objects: int,
                 radius_range=(0.12, 0.3), min_visible: float = 0.45):
    """Draw `n_objects` shapes over a background.

    Returns (uint8 image [size, size, 3], list of (class index, visible bool mask)), in drawing
    order. A shape is re-placed (up to 10 tries) or left out when it would hide more than
    `1 - min_visible` of one already drawn, so every listed object is clearly visible.
    """
    image = _background(rng, size)
    objects: list[tuple[int, np.ndarray]] = []
    for _ in range(n_objects):
        cls_idx = int(rng.integers(len(CLASSES)))
        for _ in range(10):
            radius = rng.uniform(*radius_range) * size
            centre = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
            mask = _shape_mask(CLASSES[cls_idx], rng, size, centre, radius)
            if mask.sum() < 30:
                continue
            ok = all((m & ~mask).sum() >= min_visible * m.sum() for _, m in objects)
            if ok:
                break
        else:
            continue
        kinds = ("solid", "solid", "stripes", "checker", "dots", "gradient", "noise")
        tex = _texture(rng, size, kinds)
        image = np.where(mask[..., None], tex, image)
        objects = [(c, m & ~mask) for c, m in objects] + [(cls_idx, mask)]
    noise = rng.normal(0, 4.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), objects


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons (x, y in pixel-edge coordinates) tracing the mask's outer boundaries."""
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(mask.astype(np.float32), 1)
    polys = []
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour, tolerance=0.4)
        if len(contour) < 4:  # closed contours repeat their first point
            continue
        # find_contours gives (row, col) of pixel centres in the padded frame; pixel i spans
        # [i, i + 1) in COCO's coordinates, so centre i (+1 pad) is at i + 0.5.
        xy = np.stack([contour[:, 1] - 0.5, contour[:, 0] - 0.5], 1)
        xy = np.clip(xy, 0, [mask.shape[1], mask.shape[0]])
        polys.append([round(float(v), 2) for v in xy.ravel()])
    return polys


def _rasterize(polys: list, h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_util

    rles = mask_util.frPyObjects(polys, h, w)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


# ----------------------------------------------------------------------------- writers

def _save_jpeg(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="JPEG", quality=92)


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    """One independent stream per image, so any image can be regenerated on its own."""
    return np.random.default_rng([seed, sum(map(ord, split)) * 7919 + len(split), index])


def _write_imagefolder(out: Path, seed: int, cfg: dict, progress) -> None:
    write_imagefolder(out, seed=seed, train_per_class=cfg["cls_train"], val_per_class=cfg["cls_val"],
                      size=cfg["cls_size"], fill=cfg.get("cls_fill", OPTIONAL["cls_fill"]), progress=progress)


def write_imagefolder(root: str | os.PathLike, *, seed: int = 0, train_per_class: int = 12,
                      val_per_class: int = 4, size: int = 64, num_classes: int = len(CLASSES),
                      class_colour: bool = False, fill: str = "textured", progress=None) -> str:
    """Write only the ImageFolder part (`root/{train,val}/<class>/*.jpg`, the first `num_classes`
    of CLASSES) at any size: what `generate` writes under `imagefolder/`, and what tests and smoke
    runs use when they need a few images in seconds (`class_colour=True`: each class's shape in its
    own hue, learnable in a few iterations). `fill="solid"` paints every shape (and occluder) in one
    random flat colour instead of a random two-colour pattern. Returns `root`."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    if not 1 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be 1..{len(CLASSES)} (the built-in shapes), got {num_classes}")
    out = Path(root)
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for name in CLASSES[:num_classes]:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        counts = dict.fromkeys(range(num_classes), 0)
        index = 0
        while min(counts.values()) < per_class:
            rng = _rng(seed, "cls-" + split, index)
            index += 1
            target = index % num_classes
            if counts[target] >= per_class:
                continue
            # The dominant shape is drawn first and may be partly covered by a smaller one.
            image = _render_centred(rng, size, target, class_colour, fill)
            _save_jpeg(image, out / split / CLASSES[target] / f"{split}_{index:06d}.jpg")
            counts[target] += 1
            if progress is not None:
                progress(1)
    return str(root)


def _render_centred(rng: np.random.Generator, size: int, target: int, class_colour: bool = False,
                    fill: str = "textured"):
    """An object-centric uint8 image: class `target` large in the middle, maybe a small occluder.
    `class_colour`: the shape is painted in its class's own hue over a plain grey background
    (classes a linear probe on barely trained features separates, for smoke tests) instead of a
    random texture over a photo or pattern."""
    image = np.full((size, size, 3), 128.0) if class_colour else _background(rng, size)
    radius = rng.uniform(0.28, 0.42) * size
    centre = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
    mask = _shape_mask(CLASSES[target], rng, size, centre, radius)
    kinds = ("solid",) if fill == "solid" else ("solid", "solid", "stripes", "checker", "dots", "gradient", "noise")
    paint = _hsv_colour(target / len(CLASSES), 1.0, 1.0) if class_colour else _texture(rng, size, kinds)
    image = np.where(mask[..., None], paint, image)
    if rng.random() < 0.4:
        other = int(rng.integers(len(CLASSES)))
        small = _shape_mask(CLASSES[other], rng, size, rng.uniform(0, size, 2),
                            rng.uniform(0.1, 0.18) * size)
        if (mask & ~small).sum() >= 0.6 * mask.sum():
            image = np.where(small[..., None], _texture(rng, size, kinds), image)
    noise = rng.normal(0, 4.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _scene_records(seed: int, split: str, count: int, cfg: dict, first_id: int, images_dir: Path,
                   progress):
    """Render `count` scenes into `images_dir`; return COCO image and annotation records."""
    size = cfg["det_size"]
    images, annotations = [], []
    for i in range(count):
        rng = _rng(seed, "det-" + split, i)
        image_id = first_id + i
        n = int(rng.integers(1, cfg["max_objects"] + 1))
        image, objects = render_scene(rng, size, n)
        file_name = f"{image_id:06d}.jpg"
        _save_jpeg(image, images_dir / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})
        for cls_idx, visible in objects:
            polys = mask_to_polygons(visible)
            if not polys:
                continue
            raster = _rasterize(polys, size, size)
            if raster.sum() < 16:
                continue
            ys, xs = np.nonzero(raster)
            x0, y0 = int(xs.min()), int(ys.min())
            w, h = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
            annotations.append({
                "id": 0, "image_id": image_id, "category_id": cls_idx + 1, "iscrowd": 0,
                "bbox": [x0, y0, w, h], "area": int(raster.sum()), "segmentation": polys,
            })
        progress(1)
    return images, annotations


def _coco_json(images, annotations, path: Path) -> None:
    for k, ann in enumerate(annotations, start=1):
        ann["id"] = k
    doc = {
        "info": {"description": "infomin built-in dataset", "version": str(GENERATOR_VERSION)},
        "licenses": [],
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"}
                       for i, n in enumerate(CLASSES)],
        "images": images,
        "annotations": annotations,
    }
    path.write_text(json.dumps(doc))


def _voc_xml(image: dict, anns: list, path: Path) -> None:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = image["file_name"]
    size = ET.SubElement(root, "size")
    for key, val in (("width", image["width"]), ("height", image["height"]), ("depth", 3)):
        ET.SubElement(size, key).text = str(val)
    ET.SubElement(root, "segmented").text = "0"
    for ann in anns:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = CLASSES[ann["category_id"] - 1]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        x, y, w, h = ann["bbox"]
        # VOC boxes are 1-based inclusive pixel indices.
        for key, val in (("xmin", x + 1), ("ymin", y + 1), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(box, key).text = str(val)
    ET.ElementTree(root).write(path)


def _write_detection(out: Path, seed: int, cfg: dict, progress) -> None:
    coco, voc = out / "coco", out / "VOC2007"
    for d in (coco / "annotations", coco / "train2017", coco / "val2017", voc / "JPEGImages",
              voc / "Annotations", voc / "ImageSets" / "Main"):
        d.mkdir(parents=True, exist_ok=True)
    splits = {}
    first = 1
    place = os.link if _can_link(coco) else shutil.copyfile
    for split, count, folder in (("train", cfg["det_train"], "train2017"),
                                 ("val", cfg["det_test"], "val2017")):
        images, anns = _scene_records(seed, split, count, cfg, first, coco / folder, progress)
        first += count
        _coco_json(images, anns, coco / "annotations" / f"instances_{folder}.json")
        by_image: dict[int, list] = {}
        for ann in anns:
            by_image.setdefault(ann["image_id"], []).append(ann)
        ids = []
        for image in images:
            stem = Path(image["file_name"]).stem
            place(coco / folder / image["file_name"], voc / "JPEGImages" / image["file_name"])
            _voc_xml(image, by_image.get(image["id"], []), voc / "Annotations" / f"{stem}.xml")
            ids.append(stem)
        splits[split] = ids
    trainval = splits["train"]
    n_val = max(1, len(trainval) // 5)
    lists = {"train": trainval[:-n_val], "val": trainval[-n_val:], "trainval": trainval,
             "test": splits["val"]}
    for name, ids in lists.items():
        (voc / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(i + "\n" for i in ids))
    # Class order for readers that would otherwise sort the names (it matches the COCO ids).
    (voc / "labels.txt").write_text("".join(n + "\n" for n in CLASSES))


def _can_link(folder: Path) -> bool:
    probe = folder / ".link-probe"
    try:
        probe.touch()
        os.link(probe, folder / ".link-probe2")
        os.remove(folder / ".link-probe2")
        return True
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- cache

def _manifest(seed: int, scale: str, cfg: dict) -> dict:
    return {"generator": "infomin.datasets.builtin", "version": GENERATOR_VERSION, "seed": seed,
            "scale": scale, "params": cfg, "classes": list(CLASSES)}


def read_manifest(root: str | os.PathLike) -> dict | None:
    path = Path(root) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def generate(root: str | os.PathLike, seed: int = 0, scale: str = "quick", *,
             overrides: dict | None = None, force: bool = False, progress: bool = True
             ) -> BuiltinData:
    """Write (or reuse) the built-in dataset under `root`; return where each layout is.

    `scale` is "quick" (seconds; tests) or "full" (the demo). `overrides` changes single entries of
    `SCALES[scale]` (e.g. {"det_train": 8}). An existing tree is reused when its manifest matches;
    a tree made by this generator with other settings is replaced; a non-empty folder that this
    generator did not make is never touched (ValueError).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {sorted(SCALES)}")
    cfg = dict(SCALES[scale])
    unknown = set(overrides or {}) - set(cfg) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"unknown dataset parameters {sorted(unknown)}: known are {sorted({*cfg, *OPTIONAL})}")
    if (overrides or {}).get("cls_fill", OPTIONAL["cls_fill"]) not in FILLS:
        raise ValueError(f"cls_fill must be one of {FILLS}, got {overrides['cls_fill']!r}")
    cfg.update(overrides or {})
    root = Path(root).resolve()
    wanted = _manifest(int(seed), scale, cfg)
    existing = read_manifest(root)
    if existing == wanted and not force:
        return BuiltinData.at(root)
    if root.exists() and existing is None and any(root.iterdir()):
        raise ValueError(
            f"{root} is not empty and has no {MANIFEST} from the built-in dataset generator; "
            "refusing to overwrite it. Pass an empty or new folder.")

    from tqdm import tqdm

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        total = (cfg["cls_train"] + cfg["cls_val"]) * len(CLASSES) + cfg["det_train"] + cfg["det_test"]
        with tqdm(total=total, desc=f"built-in data ({scale}, seed {seed})", unit="img",
                  disable=not progress) as bar:
            _write_imagefolder(tmp / "imagefolder", int(seed), cfg, bar.update)
            _write_detection(tmp, int(seed), cfg, bar.update)
        (tmp / MANIFEST).write_text(json.dumps(wanted, indent=1, sort_keys=True))
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / "tree")
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuiltinData.at(root)


def builtin_imagefolder(folder: str | os.PathLike, seed: int = 0, variant: str = "textured") -> str:
    """ImageFolder root (train/, val/) of the built-in data for the view tools run without data:
    `variant` names a VIEW_DATA set ("textured": the "full" scale's 800 train / 200 val images,
    enough for held-out batches of 64; "solid": 4000 / 400 with flat-coloured shapes); its
    detection part is cut to a token size."""
    if variant not in VIEW_DATA:
        raise ValueError(f"unknown built-in view data {variant!r}: choose one of {', '.join(VIEW_DATA)}")
    scale, extra = VIEW_DATA[variant]
    data = generate(folder, seed=seed, scale=scale, overrides={"det_train": 2, "det_test": 2, **extra},
                    progress=False)
    return str(Path(data.imagefolder_train).parent)
