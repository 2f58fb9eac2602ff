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


@pytest.fixture(scope="module")
def shipped():
    return load_catalog(DEFAULT_CATALOG)


def test_shipped_catalogue_lists_the_published_checkpoints(shipped):
    assert set(shipped) == PUBLISHED
    for name, e in shipped.items():
        assert e.filename.startswith(name) or e.filename.startswith(name.split("_")[0]), name
        assert e.urls or e.shared_folder


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
