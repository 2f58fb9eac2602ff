"""The shipped model-zoo catalogue and its validation."""
import pytest
import yaml

from _zoo_helpers import entry, write_catalog
from infomin.zoo import CatalogError, UnknownModelError, get_entry, load_catalog
from infomin.zoo.catalog import DEFAULT_CATALOG, parse_catalog

# The publishers' own names (PyContrast MODEL_ZOO.md file names; MoCo README rows).
PUBLISHED = {
    "InsDis", "CMC", "MoCo", "PIRL", "MoCov2", "InfoMin_200", "InfoMin_800", "InfoMin_800_run2",
    "InfoMin_resnet101_e300", "InfoMin_resnet152_e200", "InfoMin_resnext101v1_e200",
    "InfoMin_resnext101v2_e200", "InfoMin_resnext101v3_e200", "InfoMin_resnext152v1_e200",
    "InfoMin_resnext152v2_e200", "moco_v1_200ep", "moco_v2_200ep", "moco_v2_800ep",
}
# PyContrast detection/README.md: the R-50 FPN rows with a 'model' link (the C4 rows have none).
PUBLISHED_DETECTORS = {
    f"mask_rcnn_R50_FPN_{s}_coco_{init}": (box, mask)
    for s, rows in {
        "1x": {"random": (32.8, 29.9), "supervised": (39.7, 35.9), "InstDis": (38.8, 35.2),
               "PIRL": (38.6, 35.1), "MoCo": (39.4, 35.6), "InfoMin": (40.6, 36.7)},
        "2x": {"random": (38.4, 34.7), "supervised": (41.6, 37.6), "InstDis": (41.3, 37.3),
               "PIRL": (41.2, 37.4), "MoCo": (41.7, 37.5), "MoCov2": (41.7, 37.6), "InfoMin": (42.5, 38.4)},
        "6x": {"random": (42.7, 38.6), "supervised": (42.6, 38.5), "InfoMin": (43.6, 39.2)},
    }.items() for init, (box, mask) in rows.items()
}


@pytest.fixture(scope="module")
def shipped():
    return load_catalog(DEFAULT_CATALOG)


def test_shipped_catalogue_lists_the_published_checkpoints(shipped):
    assert set(shipped) == PUBLISHED | set(PUBLISHED_DETECTORS)
    for name, e in shipped.items():
        if e.is_detector:
            continue
        assert e.filename.startswith(name) or e.filename.startswith(name.split("_")[0]), name
        assert e.urls or e.shared_folder


def test_published_detectors_carry_their_config_numbers_and_links(shipped):
    from detectron2.config import get_cfg
    from infomin.configs import get_config_file

    for name, (box, mask) in PUBLISHED_DETECTORS.items():
        e = shipped[name]
        assert e.is_detector and not e.convertible and e.format == "detectron2"
        schedule = name.split("_")[4]
        assert e.reported == {f"coco_mask_rcnn_r50_fpn_{schedule}": {
            "box_ap": box, "mask_ap": mask, "source": "pycontrast_det", "note": e.reported[
                f"coco_mask_rcnn_r50_fpn_{schedule}"]["note"]}}
        assert len(e.urls) == 1 and e.urls[0].startswith("https://www.dropbox.com/s/")
        assert e.urls[0].endswith("/model_final.pth?dl=1") and e.log.endswith("/log.txt?dl=1")
        # the config it names is packaged, and its input convention is the entry's
        cfg = get_cfg()
        cfg.merge_from_file(get_config_file(e.config))
        assert f"R50_FPN_{schedule}_coco_" in e.config
        for key, value in e.input.items():
            node = cfg
            for part in key.split("."):
                node = getattr(node, part)
            assert (list(node) if isinstance(node, tuple) else node) == value, (name, key)
        with pytest.raises(CatalogError, match="fine-tuned detector"):
            e.detectron2_settings()
    # the same rows as the encoders' reported detection numbers where both exist
    assert shipped["InfoMin_200"].reported["coco_mask_rcnn_r50_fpn_2x"]["box_ap"] == \
        shipped["mask_rcnn_R50_FPN_2x_coco_InfoMin"].reported["coco_mask_rcnn_r50_fpn_2x"]["box_ap"]


def test_detector_entries_are_validated():
    data = _base()
    det = data["models"]["mask_rcnn_R50_FPN_1x_coco_InfoMin"]
    for change, message in (({"config": None}, "needs 'config'"),
                            ({"detectron2": {"MODEL.RESNETS.DEPTH": 50}}, "does not apply"),
                            ({"kind": "backbone"}, "kind")):
        bad = _base()
        bad["models"]["mask_rcnn_R50_FPN_1x_coco_InfoMin"] = {**det, **change}
        with pytest.raises(CatalogError, match=message):
            parse_catalog(bad)
    bad = _base()
    bad["models"]["InfoMin_800"]["config"] = "detection/coco/x.yaml"
    with pytest.raises(CatalogError, match="kind: detector"):
        parse_catalog(bad)
    bad = _base()
    bad["models"]["InfoMin_800"]["epochs"] = None
    with pytest.raises(CatalogError, match="epochs"):
        parse_catalog(bad)


def test_no_invented_checksums(shipped):
    # PyContrast publishes no checksum; MoCo publishes md5 prefixes only (README "md5" column).
    assert all(e.sha256 is None for e in shipped.values())
    assert {n: e.md5_prefix for n, e in shipped.items() if e.md5_prefix} == {
        "moco_v1_200ep": "b251726a", "moco_v2_200ep": "59fd9945", "moco_v2_800ep": "a04e12f8"}
    assert shipped["InfoMin_800"].checksum_kind.startswith("pin")


def test_every_number_and_url_names_its_source(shipped):
    for e in shipped.values():
        for key, rec in e.reported.items():
            assert rec["source"] in e.source_text, (e.name, key)
        if e.urls:
            assert e.url_source in e.source_text
    assert shipped["InfoMin_800"].reported["imagenet_linear_top1"]["value"] == 73.0
    assert shipped["InfoMin_200"].reported["coco_mask_rcnn_r50_fpn_1x"]["box_ap"] == 40.6
    assert shipped["moco_v2_800ep"].reported["voc07_12_faster_rcnn_r50_c4_24k"]["ap"] == 57.4


def test_detectron2_settings_carry_the_torchvision_input_convention(shipped):
    s = shipped["InfoMin_800"].detectron2_settings()
    assert s["INPUT.FORMAT"] == "RGB" and s["MODEL.RESNETS.STRIDE_IN_1X1"] is False
    assert s["MODEL.PIXEL_STD"] == [58.395, 57.120, 57.375] and s["MODEL.RESNETS.DEPTH"] == 50
    x = shipped["InfoMin_resnext152v2_e200"].detectron2_settings()
    assert (x["MODEL.RESNETS.DEPTH"], x["MODEL.RESNETS.NUM_GROUPS"], x["MODEL.RESNETS.WIDTH_PER_GROUP"]) == (152, 32, 8)
    assert not shipped["CMC"].convertible
    with pytest.raises(CatalogError, match="two half-width"):
        shipped["CMC"].detectron2_settings()


def test_lookup_is_forgiving_about_case_and_suggests_names(shipped):
    assert get_entry("infomin_800", shipped).name == "InfoMin_800"
    with pytest.raises(UnknownModelError, match="InfoMin_800"):
        get_entry("InfoMin_80", shipped)


def _base():
    return yaml.safe_load(open(DEFAULT_CATALOG))


@pytest.mark.parametrize("field,value,message", [
    ("sha256", "ABC", "sha256 must be 64 lowercase hex"),
    ("md5_prefix", "xyz", "md5_prefix"),
    ("filename", "../evil.pth", "plain file name"),
    ("urls", ["ftp://host/file"], "must be http"),
    ("input", "bgr_caffe", "input convention"),
    ("epochs", 0, "epochs"),
    ("colour", "blue", "unknown field"),
])
def test_malformed_entries_are_refused_with_entry_and_field(field, value, message):
    data = _base()
    data["models"]["InfoMin_800"][field] = value
    with pytest.raises(CatalogError, match=message) as err:
        parse_catalog(data, "cat.yaml")
    assert "InfoMin_800" in str(err.value) and "cat.yaml" in str(err.value)


def test_numbers_without_a_defined_source_are_refused():
    data = _base()
    data["models"]["InfoMin_800"]["reported"]["imagenet_linear_top1"]["source"] = "hearsay"
    with pytest.raises(CatalogError, match="source"):
        parse_catalog(data)
    data = _base()
    del data["models"]["InfoMin_800"]["url_source"]
    with pytest.raises(CatalogError, match="url_source"):
        parse_catalog(data)


def test_entry_needs_a_way_to_get_the_file_and_a_reason_when_not_convertible():
    data = _base()
    data["models"]["InfoMin_800"].update(urls=[], shared_folder=None)
    with pytest.raises(CatalogError, match="urls / shared_folder"):
        parse_catalog(data)
    data = _base()
    data["models"]["InfoMin_800"]["detectron2"] = None
    with pytest.raises(CatalogError, match="not_convertible"):
        parse_catalog(data)


def test_missing_or_broken_catalogue_file(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOMIN_ZOO_CATALOG", str(tmp_path / "nope.yaml"))
    with pytest.raises(CatalogError, match="INFOMIN_ZOO_CATALOG"):
        load_catalog()
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(bad)
    path = write_catalog(tmp_path / "ok.yaml", {"tiny": entry("tiny.pth", ["https://h/t.pth"])})
    monkeypatch.setenv("INFOMIN_ZOO_CATALOG", path)
    assert list(load_catalog()) == ["tiny"]
    assert load_catalog()["tiny"].urls == ("https://h/t.pth",)
