"""`infomin.configs`: packaged config names resolve (with their `_BASE_` chains), misspelt ones get
close matches, and every tool's `--config-file` goes through the same resolution.

Oracles: the checkout's own files under configs/ and the configs Detectron2 / fvcore build from
those paths directly.
"""
import os

import pytest
from detectron2.config import get_cfg

from infomin.configs import CONFIG_ROOT, get_config_file, list_config_files, resolve_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C4_VOC = "detection/voc/faster_rcnn_R50_C4_24k_voc0712_infomin.yaml"
TINY = "pretrain/infomin_R18_tiny.yaml"


def _checkout(name):
    return os.path.join(ROOT, "configs", *name.split("/"))


def test_names_are_paths_below_configs():
    names = list_config_files()
    assert C4_VOC in names and TINY in names and "study/Base-Demo-R18-FPN.yaml" in names
    assert all(os.path.isfile(_checkout(n)) for n in names)
    assert os.path.samefile(get_config_file(C4_VOC), _checkout(C4_VOC))
    # the checkout's spelling ("configs/...") names the same packaged file
    assert get_config_file("configs/" + C4_VOC) == get_config_file(C4_VOC)


def test_packaged_config_keeps_its_base_chain():
    cfg = get_cfg()
    cfg.merge_from_file(get_config_file(C4_VOC))
    # set only by ../Base-RCNN-C4-BN.yaml, two links up the chain
    assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm" and cfg.MODEL.RESNETS.NORM == "naiveSyncBN"
    assert cfg.DATASETS.TEST == ("voc_2007_test",)  # from the _supervised file
    assert cfg.INPUT.FORMAT == "RGB"  # from the _infomin file itself


def test_unknown_names_list_close_matches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="close matches: detection/voc/faster_rcnn_R50_C4_24k_voc0712_infomin.yaml"):
        resolve_config_file("detection/voc/faster_rcnn_R50_C4_24k_voc0712_infomn.yaml")
    with pytest.raises(FileNotFoundError, match=f"does not exist.*close matches: {TINY}"):
        resolve_config_file("infomin_R18_tiny.yaml")  # the folder left out
    with pytest.raises(FileNotFoundError, match="packaged configs are under detection/coco/"):
        resolve_config_file("nothing_like_it")


def test_names_cannot_leave_the_configs_folder(tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text("SEED: 7\n")
    for name in (str(outside), os.path.relpath(outside, CONFIG_ROOT), "__init__.py", "detection"):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            get_config_file(name)


def test_an_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pretrain").mkdir()
    (tmp_path / TINY).write_text("SEED: 7\n")
    assert resolve_config_file(TINY) == TINY
    outside = tmp_path / "mine.yaml"
    outside.write_text("SEED: 7\n")
    assert resolve_config_file(str(outside)) == str(outside)


def test_every_tool_loads_a_packaged_name(tmp_path, monkeypatch):
    from infomin import viewlearn as learn_views
    from infomin.detection import train_net
    from infomin.detection.cli import train_net as train_net_cli
    from infomin.pretrain import config as pretrain_config

    monkeypatch.chdir(tmp_path)  # no configs/ here: only the package can answer
    for name in (TINY, "views/sweep_moco_R18_tiny.yaml", "study/pretrain_infomin_R18.yaml"):
        assert pretrain_config.load_cfg(name).dump() == pretrain_config.load_cfg(_checkout(name)).dump()
    name = "views/stl10_semi_vp_RGB.yaml"
    assert learn_views.load_cfg(name).dump() == learn_views.load_cfg(_checkout(name)).dump()
    args = train_net_cli.build_parser().parse_args(["--config-file", C4_VOC, "MODEL.DEVICE", "cpu"])
    direct = get_cfg()
    direct.merge_from_file(_checkout(C4_VOC))
    direct.merge_from_list(["MODEL.DEVICE", "cpu"])
    assert train_net.setup_cfg(args).dump() == direct.dump()


def test_every_tool_reports_a_misspelt_name(tmp_path, monkeypatch, capsys):
    from infomin.cli import learn_views
    from infomin.detection.cli import train_net
    from infomin.pretrain.cli import linear_eval, pretrain as pretrain_cli

    monkeypatch.chdir(tmp_path)
    typo = "pretrain/infomin_R18_tny.yaml"
    from _pretrain_helpers import usage_error

    for main, prog in ((pretrain_cli.main, "infomin-pretrain"),
                       (lambda argv: linear_eval.main(["--checkpoint", "x.pth", *argv]), "infomin-linear-eval")):
        assert f"close matches: {TINY}" in usage_error(main, ["--config-file", typo], capsys, prog)
    with pytest.raises(SystemExit):
        learn_views.main(["--config-file", "views/stl10_semi_vp_RBG.yaml"])
    assert "close matches: views/stl10_semi_vp_RGB.yaml" in capsys.readouterr().err
    assert train_net.main(["--config-file", "detection/voc/faster_rcnn_R50_C4_24k_voc0712_infomn.yaml"]) == 2
    assert f"close matches: {C4_VOC}" in capsys.readouterr().err
