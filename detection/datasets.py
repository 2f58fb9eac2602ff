"""Register COCO-format and VOC-format datasets that live in any folder.

Detectron2's builtin names (``coco_2017_train``, ``voc_2007_trainval``, ...) already resolve under
``$DETECTRON2_DATASETS`` (default ``./datasets``), read when ``detectron2.data`` is first imported;
`builtin_root` reports that folder. For data elsewhere, register a name once per process (in every
worker: `infomin.detection.train_net` does it from its ``--coco-dataset``/``--voc-dataset`` flags)
and put the name in ``DATASETS.TRAIN``/``DATASETS.TEST``. Metadata carries ``evaluator_type``, which
`infomin.detection.trainer` uses to pick the COCO or the VOC evaluator.
"""
import glob
import logging
import os
import xml.etree.ElementTree as ET

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.data.datasets.pascal_voc import CLASS_NAMES as VOC_CLASS_NAMES
from detectron2.data.datasets.pascal_voc import register_pascal_voc

__all__ = [
    "register_coco_folder", "register_voc_folder", "voc_class_names", "builtin_root",
    "VOC_CLASS_NAMES",
]
logger = logging.getLogger(__name__)


def builtin_root():
    """The folder Detectron2's builtin dataset names resolve under (``$DETECTRON2_DATASETS``)."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def _require(path, what, hint):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist; {hint}")


def _check_free(name, **metadata):
    """A name may be registered again only with the same metadata (re-running setup is fine)."""
    if name not in DatasetCatalog.list():
        return False
    old = MetadataCatalog.get(name)
    same = all(getattr(old, key, None) == value for key, value in metadata.items())
    if not same:
        raise ValueError(
            f"dataset name {name!r} is already registered with different data "
            f"({ {k: getattr(old, k, None) for k in metadata} }); pick another name."
        )
    return True


def register_coco_folder(name, json_file, image_root, **metadata):
    """Register COCO-format instances (``json_file``; images under ``image_root``) as ``name``.

    Class names come from the json's categories when the dataset is first loaded (Detectron2 maps
    category ids to contiguous ids then). Evaluated with `COCOEvaluator` (bbox, and segm when the
    model predicts masks).
    """
    json_file, image_root = os.path.abspath(json_file), os.path.abspath(image_root)
    _require(json_file, "COCO annotation file", "pass the instances_*.json of the split.")
    _require(image_root, "COCO image folder", "pass the folder the json's file_name entries are in.")
    if _check_free(name, json_file=json_file, image_root=image_root):
        return name
    register_coco_instances(name, dict(metadata), json_file, image_root)
    return name


def _object_names(annotation_dir):
    names = set()
    for path in sorted(glob.glob(os.path.join(annotation_dir, "*.xml"))):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise ValueError(f"{path} is not valid XML ({exc}); fix or remove it.") from exc
        names.update(obj.findtext("name", "").strip() for obj in root.iter("object"))
    names.discard("")
    return names


def voc_class_names(dirname):
    """Class names of a VOC-layout folder, in training order.

    ``<dirname>/labels.txt`` (one name per line) wins. Otherwise the object names of *all*
    ``Annotations/*.xml`` are collected (all splits, so train and test agree): if they are VOC's
    own classes, VOC's 20 names in VOC's order; else the names sorted.
    """
    labels = os.path.join(dirname, "labels.txt")
    if os.path.isfile(labels):
        with open(labels, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"{labels} must list each class name once, one per line.")
        return tuple(names)
    annotation_dir = os.path.join(dirname, "Annotations")
    _require(annotation_dir, "VOC annotation folder", "a VOC folder holds Annotations/, "
             "ImageSets/Main/ and JPEGImages/.")
    found = _object_names(annotation_dir)
    if not found:
        raise ValueError(f"no <object><name> in {annotation_dir}/*.xml; pass class_names= or write "
                         f"{labels} (one class name per line).")
    if found <= set(VOC_CLASS_NAMES):
        return tuple(VOC_CLASS_NAMES)
    return tuple(sorted(found))


# What Detectron2's VOC loader and evaluator read from every <object>.
VOC_OBJECT_FIELDS = ("name", "pose", "truncated", "difficult", "bndbox")


def _check_voc_annotation(dirname, split_file):
    """Fail at registration, not after training, if the split's first XML lacks what is read."""
    with open(split_file, encoding="utf-8") as f:
        first = next((line.strip() for line in f if line.strip()), None)
    if first is None:
        raise ValueError(f"{split_file} lists no image ids.")
    for sub, ext in (("Annotations", ".xml"), ("JPEGImages", ".jpg")):
        _require(os.path.join(dirname, sub, first + ext), f"{sub} file of image {first!r}",
                 f"every id in {split_file} needs {sub}/<id>{ext}.")
    path = os.path.join(dirname, "Annotations", first + ".xml")
    root = ET.parse(path).getroot()
    if root.find("size/width") is None or root.find("size/height") is None:
        raise ValueError(f"{path} has no <size><width>/<height>; VOC annotations need them.")
    for obj in root.iter("object"):
        missing = [field for field in VOC_OBJECT_FIELDS if obj.find(field) is None]
        if missing:
            raise ValueError(
                f"{path}: an <object> lacks {missing}; the VOC evaluator reads "
                f"{list(VOC_OBJECT_FIELDS)} from each object (use <pose>Unspecified</pose>, "
                "<truncated>0</truncated>, <difficult>0</difficult> when unknown).")


def register_voc_folder(name, dirname, split, year=2007, class_names=None):
    """Register the ``split`` of a VOC-layout folder (Annotations/, ImageSets/Main/, JPEGImages/).

    ``year`` picks the VOC evaluator's metric: 2007 uses the 11-point AP of VOC2007 test, any
    other year the area under the precision/recall curve. ``class_names`` defaults to
    `voc_class_names` of the folder.
    """
    dirname = os.path.abspath(dirname)
    _require(dirname, "VOC folder", "pass the folder holding Annotations/, ImageSets/ and JPEGImages/.")
    split_file = os.path.join(dirname, "ImageSets", "Main", f"{split}.txt")
    _require(split_file, f"split list for {split!r}", "write the image ids of the split there, one per line.")
    _check_voc_annotation(dirname, split_file)
    try:
        year = int(year)
    except (TypeError, ValueError):
        raise ValueError(f"year must be an integer like 2007 or 2012, got {year!r}") from None
    names = tuple(class_names) if class_names is not None else voc_class_names(dirname)
    if _check_free(name, dirname=dirname, split=split, year=year, thing_classes=list(names)):
        return name
    register_pascal_voc(name, dirname, split, year, names)
    MetadataCatalog.get(name).set(evaluator_type="pascal_voc")  # v0.6 leaves it to the caller
    logger.info("registered VOC dataset %s (%s, split %s, %d classes)", name, dirname, split, len(names))
    return name
