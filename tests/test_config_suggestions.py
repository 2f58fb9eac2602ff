"""Every tool answers a misspelt config key with the key and the closest real ones
(`infomin.config.KeySuggestions`), on the command line and in a YAML file, before any work.

Oracle: the real key names of each tool's defaults (hand-picked typos one letter off)."""
import os

import pytest

from infomin.config import CfgNode, UnknownKeyError, load_cfg

from _pretrain_helpers import REPO, TINY


def _defaults():
    c = CfgNode()
    c.SOLVER = CfgNode()
    c.SOLVER.BASE_LR = 0.1
    c.SOLVER.EPOCHS = 3
    return c


def test_core_config_suggests_names_defaults_and_promotes_ints(tmp_path):
    with pytest.raises(UnknownKeyError) as e:
        load_cfg(_defaults, None, ["SOLVER.BASE_LRR", "1"])
    msg = str(e.value)
    assert "Unknown config key 'SOLVER.BASE_LRR'" in msg and "Did you mean: SOLVER.BASE_LR" in msg
    assert "test_config_suggestions._defaults()" in msg  # where to read every key
    cfg = load_cfg(_defaults, None, ["SOLVER.BASE_LR", "1"])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    path = tmp_path / "c.yaml"
    path.write_text("SOLVER:\n  EPOCHSS: 2\n")
    with pytest.raises(UnknownKeyError, match="SOLVER.EPOCHSS.*Did you mean: SOLVER.EPOCHS"):
        load_cfg(_defaults, str(path))


def test_pretrain_command(capsys):
    from infomin.pretrain.cli.pretrain import main

    from _pretrain_helpers import usage_error

    msg = usage_error(main, ["--config-file", TINY, "SOLVER.BASE_LRR", "0.1"], capsys, "infomin-pretrain")
    assert "Unknown config key 'SOLVER.BASE_LRR'" in msg
    assert "Did you mean: SOLVER.BASE_LR" in msg


def test_linear_eval_command(capsys):
    from infomin.pretrain.cli.linear_eval import main

    from _pretrain_helpers import usage_error

    msg = usage_error(main, ["--checkpoint", "x.pth", "--config-file", TINY, "LINEAR.EPOCH", "2"], capsys,
                      "infomin-linear-eval")
    assert "Unknown config key 'LINEAR.EPOCH'" in msg and "LINEAR.EPOCHS" in msg


def test_learn_views_command_and_yaml(tmp_path, capsys):
    from infomin.cli.learn_views import main

    with pytest.raises(SystemExit):
        main(["LEARN.MODEE", "semi"])
    err = capsys.readouterr().err
    assert "Unknown config key 'LEARN.MODEE'" in err and "Did you mean: LEARN.MODE" in err
    path = tmp_path / "v.yaml"
    path.write_text("GENERATOR:\n  BLOCK: 2\n")
    with pytest.raises(SystemExit):
        main(["--config-file", str(path)])
    assert "GENERATOR.BLOCK'. Did you mean: GENERATOR.BLOCKS" in capsys.readouterr().err


@pytest.mark.parametrize("knob, flag", [("crop_min", "--config-file"), ("color_split", "--color-config")])
def test_view_sweep_command_before_any_point(tmp_path, capsys, knob, flag):
    from infomin.pretrain.cli.view_sweep import main

    config = TINY if knob == "crop_min" else os.path.join(REPO, "configs", "views", "stl10_semi_vp_RGB.yaml")
    key, real = ("SOLVER.EPOCH", "SOLVER.EPOCHS") if knob == "crop_min" else ("EVAL.PROBE_EPOCH", "EVAL.PROBE_EPOCHS")
    with pytest.raises(SystemExit):
        main(["--knob", knob, "--values", "0.2" if knob == "crop_min" else "RGB", flag, config,
              "--output-dir", str(tmp_path / "o"), key, "1"])
    err = capsys.readouterr().err
    assert f"Unknown config key {key!r}" in err and f"Did you mean: {real}" in err
    assert not (tmp_path / "o").exists()  # refused before any point ran


def test_train_net_command_opts_and_yaml(tmp_path, capsys):
    from infomin.detection.cli.train_net import main

    cfg = "detection/voc/faster_rcnn_R50_C4_24k_voc0712_infomin.yaml"
    assert main(["--config-file", cfg, "MODEL.WEIGTHS", "x.pkl"]) == 2
    err = capsys.readouterr().err
    assert "Unknown config key 'MODEL.WEIGTHS'" in err and "Did you mean: MODEL.WEIGHTS" in err
    path = tmp_path / "d.yaml"
    path.write_text("SOLVER:\n  MAX_ITERS: 10\n")
    assert main(["--config-file", str(path)]) == 2
    assert "Unknown config key 'SOLVER.MAX_ITERS'. Did you mean: SOLVER.MAX_ITER" in capsys.readouterr().err


def test_train_net_config_equals_detectron2s():
    """The subclass changes only the error: the same defaults and the same merged values."""
    from detectron2.config import get_cfg as d2_get_cfg

    from infomin.detection.config import get_cfg

    ours, theirs = get_cfg(), d2_get_cfg()
    assert ours.dump() == theirs.dump()
    for cfg in (ours, theirs):
        cfg.merge_from_list(["SOLVER.BASE_LR", "0.5", "MODEL.WEIGHTS", "w.pkl"])
    assert ours.dump() == theirs.dump()
