"""LINEAR.AUG unset = the linear protocol each method's published number used.

Oracle: PyContrast's README (ImageNet linear table) marks CMC alone as "(no RA)", and its
docs/RUN.md evaluates with `--aug_linear RA`; Supervised has no published number (plain crops);
SimCLR's paper trains its linear classifier on random crops and flips only (plain).
What linear evaluation does is read where it builds its training transform.
"""
import pytest

import infomin.pretrain.build as build
from infomin.methods import METHOD_LINEAR, METHODS, register_method
from infomin.pretrain.config import load_cfg
from infomin.pretrain.linear_eval import run_linear_eval


PUBLISHED = {"InsDis": "RA", "CMC": "NULL", "MoCo": "RA", "PIRL": "RA", "MoCov2": "RA", "CMCv2": "RA",
             "InfoMin": "RA", "SimCLR": "NULL", "Supervised": "NULL"}


def test_each_registry_entry_carries_its_published_linear_augmentation():
    assert {name: METHOD_LINEAR[name]["aug"] for name in METHODS} == PUBLISHED


class _Built(Exception):
    pass


@pytest.mark.parametrize("method, given, used", [
    ("InfoMin", None, "RA"), ("CMC", None, "NULL"), ("MoCo", None, "RA"),
    ("InfoMin", "NULL", "NULL"), ("CMC", "RA", "RA"),  # an explicit value wins
])
def test_linear_eval_trains_with_the_methods_protocol_unless_told(method, given, used, tmp_path, monkeypatch):
    seen = []

    def record(cfg, crop_min, randaugment=False):
        seen.append((randaugment, cfg.LINEAR.AUG))
        raise _Built  # stop before any data or checkpoint is read

    monkeypatch.setattr(build, "build_crop_transform", record)
    opts = ["MODEL.METHOD", method, "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path)]
    if given:
        opts += ["LINEAR.AUG", given]
    cfg = load_cfg(None, opts)
    with pytest.raises(_Built):
        run_linear_eval(cfg, str(tmp_path / "unused.pth"))
    assert seen == [(used == "RA", used)]  # and the config it runs with (and saves) names it
    assert build.linear_aug(cfg) == used


def test_a_bad_linear_preset_is_refused():
    from infomin.methods import MoCoMethod

    with pytest.raises(ValueError, match="linear must be"):
        register_method("Toy", MoCoMethod, linear={"aug": "AutoAugment"})
    assert "Toy" not in METHODS
    with pytest.raises(ValueError, match="LINEAR.AUG must be one of"):
        load_cfg(None, ["LINEAR.AUG", "AA"])
