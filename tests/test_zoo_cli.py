"""`infomin-model-zoo list | show | download | convert` end to end (loopback server)."""
import json
import pickle

import pytest
import yaml
from detectron2.config import get_cfg

from _zoo_helpers import (ZooServer, checkpoint_bytes, closed_port_url, entry, resnet18_pycontrast,
                          sha256, write_catalog)
from infomin.zoo.catalog import DEFAULT_CATALOG
from infomin.cli.model_zoo import main


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_cli")
    r18, _ = resnet18_pycontrast(seed=1)
    small = checkpoint_bytes(1000)
    with ZooServer({"/r18.pth": r18, "/small.pth": small}) as srv:
        cat = write_catalog(root / "catalog.yaml", {
            "TinyR18": entry("r18.pth", [srv.url("/r18.pth")], sha=sha256(r18), depth=18),
            "small": entry("small.pth", [srv.url("/small.pth")], sha=sha256(small)),
            "gone": entry("gone.pth", [srv.url("/gone.pth")]),
            "offline": entry("offline.pth", [closed_port_url()], sha=sha256(small)),
            "TwoStream": entry("cmc.pth", [srv.url("/cmc.pth")], detectron2=None,
                               not_convertible="two half-width streams"),
        })
        yield srv, ["--catalog", cat, "--cache", str(root / "cache")], small, root


def test_list_shows_every_shipped_model(capsys):
    assert main(["--catalog", str(DEFAULT_CATALOG), "list"]) == 0
    out = capsys.readouterr().out
    names = yaml.safe_load(open(DEFAULT_CATALOG))["models"]
    assert all(n in out for n in names) and "73.0" in out
    assert main(["--catalog", str(DEFAULT_CATALOG), "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(names)
    assert {r["verify"] for r in rows if r["name"].startswith("moco_v2")} == {"md5-prefix+pin"}


def test_show_gives_sources(capsys):
    assert main(["--catalog", str(DEFAULT_CATALOG), "show", "InfoMin_800"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["reported"]["imagenet_linear_top1"]["value"] == 73.0
    assert "PyContrast" in shown["sources"]["pycontrast_readme"]
    assert shown["detectron2_config"]["MODEL.RESNETS.STRIDE_IN_1X1"] is False


def test_download_prints_the_verified_path(served, capsys):
    srv, opts, small, _ = served
    assert main(opts + ["download", "small", "--no-progress"]) == 0
    path = capsys.readouterr().out.strip()
    assert open(path, "rb").read() == small


def test_download_errors_exit_nonzero_with_the_reason(served, capsys):
    srv, opts, small, root = served
    assert main(opts + ["download", "gone", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "404" in err and srv.url("/gone.pth") in err and "gone.pth" in err
    assert main(opts + ["download", "no_such_model"]) == 2
    assert "list" in capsys.readouterr().err


def test_download_file_imports_a_manual_copy(served, capsys, tmp_path):
    srv, opts, small, root = served
    local = tmp_path / "fetched_by_hand.pth"
    local.write_bytes(small)
    assert main(opts + ["download", "offline", "--file", str(local)]) == 0
    cached = capsys.readouterr().out.strip()
    assert open(cached, "rb").read() == small and local.exists()


def test_convert_writes_a_detectron2_pickle_and_says_how_to_use_it(served, capsys):
    srv, opts, _, root = served
    assert main(opts + ["convert", "TinyR18", "--no-progress"]) == 0
    captured = capsys.readouterr()
    pkl = captured.out.strip()
    assert pkl.endswith("TinyR18.d2.pkl")
    hint = captured.err.strip().split("use it with: ")[1].split(" ")
    cfg = get_cfg()
    cfg.merge_from_list(hint)  # the printed options are valid Detectron2 command-line overrides
    assert cfg.MODEL.WEIGHTS == "infomin://TinyR18" and cfg.INPUT.FORMAT == "RGB"
    assert cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False and cfg.MODEL.RESNETS.DEPTH == 18
    assert cfg.MODEL.PIXEL_STD == [58.395, 57.12, 57.375]
    with open(pkl, "rb") as f:
        d2 = pickle.load(f)
    assert "res5.1.conv2.norm.running_var" in d2["model"] and "stem.conv1.weight" in d2["model"]
    assert not any(k.startswith(("fc", "head", "stem.fc")) for k in d2["model"])


def test_not_convertible_model_is_refused_before_downloading(served, capsys):
    srv, opts, _, _ = served
    n = len(srv.requests)
    assert main(opts + ["convert", "TwoStream"]) == 2
    assert "two half-width streams" in capsys.readouterr().err
    assert len(srv.requests) == n
