"""Config loading: _BASE_ inheritance, user opts over presets, clear errors, presets = reference."""
import glob
import os

import pytest

from infomin.methods import METHOD_DEFAULTS, METHOD_VIEWS
from infomin.pretrain import build
from infomin.pretrain.cli.pretrain import main as pretrain_main
from infomin.pretrain.config import get_cfg, load_cfg

from _pretrain_helpers import REPO

CONFIGS = os.path.join(REPO, "configs", "pretrain")
PRESETS = sorted(p for p in glob.glob(os.path.join(CONFIGS, "*.yaml")) if "Base" not in p)


def test_unknown_key_names_the_key_and_suggests_real_ones():
    with pytest.raises(KeyError) as e:
        load_cfg(None, ["SOLVER.BASE_LRR", "0.1"])
    assert "SOLVER.BASE_LRR" in str(e.value) and "SOLVER.BASE_LR" in str(e.value)


def test_unknown_key_in_yaml_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"_BASE_: {os.path.join(CONFIGS, 'Base-Pretrain.yaml')}\nMODEL:\n  TEMPERATUR: 0.2\n")
    with pytest.raises(KeyError, match="MODEL.TEMPERATUR.*MODEL.TEMPERATURE"):
        load_cfg(str(path))


def test_cli_reports_bad_key_without_traceback(capsys):
    from _pretrain_helpers import usage_error

    msg = usage_error(pretrain_main, ["--config-file", os.path.join(CONFIGS, "infomin_R50_200ep.yaml"),
                                      "VIEWS.CROPMIN", "0.3"], capsys, "infomin-pretrain")
    assert "Unknown config key 'VIEWS.CROPMIN'" in msg
    assert "VIEWS.CROP_MIN" in msg


def test_bad_choice_and_odd_opts_are_errors():
    with pytest.raises(ValueError, match="SOLVER.SCHEDULE"):
        load_cfg(None, ["SOLVER.SCHEDULE", "linear"])
    with pytest.raises(ValueError, match="KEY VALUE"):
        load_cfg(None, ["SOLVER.EPOCHS"])


def test_user_opts_win_over_the_preset_and_base_chain():
    cfg = load_cfg(os.path.join(CONFIGS, "infomin_R50_800ep.yaml"),
                   ["MODEL.TEMPERATURE", "0.3", "VIEWS.CROP_MIN", "0.5"])
    assert cfg.SOLVER.EPOCHS == 800  # from the 800ep file
    assert cfg.MODEL.JIGSAW is True and cfg.VIEWS.POLICY == "D"  # from its _BASE_ (200ep)
    assert cfg.SOLVER.BASE_LR == 0.03  # from Base-Pretrain
    assert cfg.MODEL.TEMPERATURE == 0.3 and cfg.VIEWS.CROP_MIN == 0.5  # the user's
    assert build.method_kwargs(cfg)["temperature"] == 0.3


@pytest.mark.parametrize("path", PRESETS, ids=os.path.basename)
def test_presets_state_the_reference_settings(path):
    """Oracle: the methods team's METHOD_DEFAULTS / METHOD_VIEWS (PyContrast's override table)."""
    cfg = load_cfg(path)
    name = cfg.MODEL.METHOD
    kwargs = build.method_kwargs(cfg)
    if "tiny" in path:  # the smoke config changes size only (and drops shuffle-BN, a no-op on one process)
        for key in ("arch", "width", "queue_size", "shuffle_bn"):
            kwargs.pop(key)
    if "_R50_" not in path and "tiny" not in path and name != "Supervised":
        kwargs.pop("arch")  # PyContrast's other released InfoMin architectures (test_pretrain_archs.py)
    for key, value in kwargs.items():
        assert METHOD_DEFAULTS[name][key] == value, (key, value)
    views = METHOD_VIEWS[name]
    assert build.view_setting(cfg, "policy") == views["policy"]
    assert build.view_setting(cfg, "crop_min") == views["crop_min"]
    assert build.view_setting(cfg, "color_space") == views["color_space"]
    assert build.uses_jigsaw(cfg) == METHOD_DEFAULTS[name].get("jigsaw", False)


def test_unset_keys_fall_back_to_the_method_not_to_a_fixed_value():
    cfg = get_cfg()
    cfg.MODEL.METHOD = "PIRL"
    assert build.method_kwargs(cfg) == {"arch": "resnet50"}  # only what the config states
    assert build.view_setting(cfg, "crop_min") == 0.08 and build.uses_jigsaw(cfg)
    cfg.VIEWS.JIGSAW = False  # an explicit setting is kept
    assert not build.uses_jigsaw(cfg)


def test_numbers_are_read_the_way_people_write_them():
    cfg = load_cfg(None, ["SOLVER.BASE_LR", "1", "MODEL.WIDTH", "0.5", "SOLVER.STEPS", "(3, 4)"])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.MODEL.WIDTH == 0.5 and tuple(cfg.SOLVER.STEPS) == (3, 4)
    with pytest.raises(ValueError, match="Type mismatch"):
        load_cfg(None, ["SOLVER.EPOCHS", "2.5"])  # a fractional epoch count is still refused


def test_cli_flags_may_follow_the_opts():
    from infomin.pretrain.cli.common import build_parser, parse_args

    args = parse_args(build_parser(""), ["--config-file", "a.yaml", "DATA.ROOT", "/x",
                                         "SOLVER.WARMUP_EPOCHS", "-1", "--resume", "auto"])
    assert args.resume == "auto" and args.opts == ["DATA.ROOT", "/x", "SOLVER.WARMUP_EPOCHS", "-1"]


def test_output_dir_flag_and_a_different_opt_is_an_error_not_a_guess():
    from infomin.pretrain.cli.common import merge_output_dir

    assert merge_output_dir(["A", "1"], "/o") == ["A", "1", "OUTPUT_DIR", "/o"]
    from infomin.cli.common import UsageError

    with pytest.raises(UsageError, match="contradicts"):
        merge_output_dir(["OUTPUT_DIR", "/p"], "/o")


def test_views_without_tiles_for_a_jigsaw_method_is_refused_up_front():
    cfg = load_cfg(os.path.join(CONFIGS, "infomin_R50_200ep.yaml"), ["VIEWS.JIGSAW", "False"])
    with pytest.raises(ValueError, match="VIEWS.JIGSAW is False but InfoMin trains a jigsaw branch"):
        build.check_views_match_method(cfg)
    ok = load_cfg(os.path.join(CONFIGS, "infomin_R50_200ep.yaml"), ["VIEWS.JIGSAW", "False", "MODEL.JIGSAW", "False"])
    build.check_views_match_method(ok)
