"""`infomin-model-zoo` describes the file it holds, and its options work where users put them.

Through the command line's `main` (as the console script calls it), against a loopback server.
"""
import pytest
from detectron2.config import get_cfg

from _zoo_helpers import ZooServer, entry, resnet18_pycontrast, sha256, write_catalog
from infomin.cli.model_zoo import main


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_user_errors")
    r18, _ = resnet18_pycontrast(seed=2)
    with ZooServer({"/r18.pth": r18}) as srv:
        cat = write_catalog(root / "catalog.yaml", {
            # publisher gives no checksum (trust on first use), like the Dropbox-hosted InfoMin_800
            "Big": entry("big.pth", [srv.url("/big.pth")], depth=50),
            "Small": entry("small.pth", [srv.url("/small.pth")], depth=18, arch="resnet18"),
            # a catalogue entry whose settings are wrong for the file it serves
            "Mislabelled": entry("r18.pth", [srv.url("/r18.pth")], sha=sha256(r18), depth=50),
        })
        local = root / "tiny_run" / "model_final.pth"
        local.parent.mkdir()
        local.write_bytes(r18)
        yield {"cat": cat, "cache": root / "cache", "local": local, "bytes": r18}


def _opts(zoo):
    return ["--catalog", zoo["cat"], "--cache", str(zoo["cache"])]


@pytest.mark.parametrize("command", ["download", "convert"])
def test_importing_another_architecture_is_refused_and_nothing_is_kept(zoo, capsys, command):
    code = main(_opts(zoo) + [command, "Big", "--file", str(zoo["local"]), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip()
    assert line.startswith("infomin-model-zoo: error: Big:") and "\n" not in line
    assert "resnet18" in line and "depth 18 (catalogue: 50)" in line and "was not imported" in line
    assert zoo["local"].read_bytes() == zoo["bytes"]  # the user's file is left as it is
    big = zoo["cache"] / "zoo" / "Big"
    assert not big.exists() or not any(big.iterdir())  # no copy, no pin, no conversion


def test_importing_the_listed_architecture_works(zoo, capsys):
    assert main(_opts(zoo) + ["download", "Small", "--file", str(zoo["local"]), "--no-progress"]) == 0
    path = capsys.readouterr().out.strip()
    assert open(path, "rb").read() == zoo["bytes"]


def test_convert_prints_the_settings_read_from_the_tensors(zoo, capsys):
    assert main(_opts(zoo) + ["convert", "Mislabelled", "--no-progress"]) == 0
    hint = capsys.readouterr().err.strip().split("use it with: ")[1].split(" ")
    cfg = get_cfg()
    cfg.merge_from_list(hint)
    assert cfg.MODEL.RESNETS.DEPTH == 18  # the file's, not the catalogue's 50
    assert cfg.MODEL.RESNETS.RES2_OUT_CHANNELS == 64 and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False
    assert cfg.INPUT.FORMAT == "RGB"  # the input convention still comes from the catalogue


def test_catalog_and_cache_work_after_the_subcommand(zoo, capsys):
    assert main(["list", *_opts(zoo)]) == 0
    out = capsys.readouterr().out
    assert "Mislabelled" in out and str(zoo["cache"]) in out
    assert main(["download", "Mislabelled", "--no-progress", *_opts(zoo)]) == 0
    assert capsys.readouterr().out.strip().startswith(str(zoo["cache"]))
    # given before and after, the later one wins, as for any repeated option
    assert main(["--catalog", "/nowhere.yaml", "list", "--catalog", zoo["cat"]]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_missing_catalog_file_is_named(tmp_path, capsys, where):
    missing = str(tmp_path / "my_catalog.yaml")
    argv = ["--catalog", missing, "list"] if where == "before" else ["list", "--catalog", missing]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"infomin-model-zoo: error: --catalog {missing}: no such file; give the path of "
                   "a catalogue YAML, or leave --catalog out to use the shipped one")
