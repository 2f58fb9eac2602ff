"""The method registry: one entry per method; settings, defaults and MODEL.* keys derive from it.

A toy method defined here (not in the library) is registered for one test at a time and trained
through the engine with its own setting given on the command line.
Oracles: the MODEL keys the config had when they were written by hand, the loss = pull * gap
identity of the toy (so the setting provably arrived), PyContrast's override table.
"""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from _methods_helpers import tiny_kwargs
from _pretrain_helpers import REPO, one_thread, tiny_opts
from infomin.methods import (
    METHOD_DEFAULTS, METHOD_VIEWS, METHODS, Method, Setting, build_method, in_range, register_method,
    registered_method,
)
from infomin.models import build_encoder
from infomin.pretrain.checkpoint import load_checkpoint
from infomin.pretrain.config import get_cfg, load_cfg
from infomin.datasets import write_imagefolder
from infomin.pretrain.engine import run_pretraining
from infomin.pretrain.linear_eval import run_linear_eval

BASE = os.path.join(REPO, "configs", "pretrain", "Base-Pretrain.yaml")
TOY_VIEWS = {"policy": "A", "crop_min": 0.2, "color_space": "RGB", "two_views": True}


class ToyMethod(Method):
    """Pull the two views' normalised features together (no negatives: a toy, it collapses)."""

    SETTINGS = Method.SETTINGS + (Setting("pull", 1.0, in_range(0, 10), "weight of the loss"),)
    inputs = ("view1", "view2")

    def __init__(self, *, arch, width, pull):
        super().__init__()
        self.encoder = build_encoder(arch, width)
        self.pull = pull

    def forward(self, batch):
        a = F.normalize(self.encoder(self._take(batch, "view1")), dim=1)
        b = F.normalize(self.encoder(self._take(batch, "view2")), dim=1)
        gap = (a - b).pow(2).sum(1).mean()
        return {"loss": self.pull * gap, "gap": gap.detach()}


@pytest.fixture(autouse=True)
def registry_restored():
    """Whatever a test registers (even by a registration that should have failed) ends with it."""
    before = dict(METHODS)
    yield
    METHODS.clear()
    METHODS.update(before)


@pytest.fixture
def toy():
    with registered_method("Toy", ToyMethod, {"pull": 0.25}, TOY_VIEWS) as spec:
        yield spec
    assert "Toy" not in METHODS


def test_config_keys_are_the_registered_settings():
    # the keys the config had when they were written by hand (old checkpoints' configs load)
    hand_written = {"METHOD", "ARCH", "WIDTH", "FEAT_DIM", "HEAD", "TEMPERATURE", "QUEUE_SIZE", "MOMENTUM",
                    "JIGSAW", "BETA", "SHUFFLE_BN", "BN_SPLITS", "DEVICE", "PRECISION"}
    step_settings = {"CHANNELS_LAST", "COMPILE"}  # how the step runs, not what the method is
    cfg = get_cfg()
    assert set(cfg.MODEL) == hand_written | step_settings
    assert all(cfg.MODEL[k] is None for k in hand_written - {"METHOD", "ARCH", "DEVICE", "PRECISION"})


def test_presets_win_over_class_defaults_and_explicit_settings_over_presets(toy):
    assert METHOD_DEFAULTS["Toy"] == {"arch": "resnet50", "width": 1, "pull": 0.25}
    assert METHOD_VIEWS["Toy"] == TOY_VIEWS
    assert build_method("toy", **tiny_kwargs("Supervised")).pull == 0.25  # the preset, not 1.0
    method = build_method("Toy", pull=2.0, **tiny_kwargs("Supervised"))
    assert method.pull == 2.0 and method.settings == {"arch": "resnet18", "width": 0.125, "pull": 2.0}
    # the built-in methods' temperature is their preset's, not ContrastiveMethod's default 0.07
    assert build_method("MoCov2", **tiny_kwargs("MoCov2")).temperature == 0.2
    assert build_method("InfoMin", **tiny_kwargs("InfoMin")).temperature == 0.15


def test_a_toy_setting_is_checked_and_refused_where_unused(toy):
    with pytest.raises(ValueError, match=r"pull must be a number in \[0, 10\], got -1"):
        build_method("Toy", pull=-1, **tiny_kwargs("Supervised"))
    with pytest.raises(ValueError, match="Toy does not use temperature"):
        build_method("Toy", temperature=0.2, **tiny_kwargs("Supervised"))
    with pytest.raises(ValueError, match="MoCo does not use pull"):
        build_method("MoCo", pull=0.5, **tiny_kwargs("MoCo"))
    with pytest.raises(KeyError, match="MODEL.PULLL.*MODEL.PULL"):
        load_cfg(None, ["MODEL.METHOD", "Toy", "MODEL.PULLL", "0.5"])


def test_unregistering_removes_the_method_and_its_config_key():
    with registered_method("Toy", ToyMethod, views=TOY_VIEWS):
        assert get_cfg().MODEL.PULL is None and "Toy" in METHOD_DEFAULTS
    assert "Toy" not in METHOD_DEFAULTS and "PULL" not in get_cfg().MODEL
    with pytest.raises(ValueError, match="unknown method 'Toy'"):
        build_method("Toy")
    with pytest.raises(KeyError, match="Unknown config key 'MODEL.PULL'"):
        load_cfg(None, ["MODEL.PULL", "0.5"])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("MoCo", ToyMethod), {}, "already registered"),
        (("Toy", ToyMethod, {"temperature": 0.2}), {}, r"preset names \['temperature'\]"),
        (("Toy", ToyMethod, {"pull": 11}), {}, "pull must be a number in"),
        (("Toy", torch.nn.Linear), {}, "not a subclass of infomin.methods.Method"),
        (("Toy", ToyMethod), {"pull": 1.0}, "are settings, not fixed"),
    ],
)
def test_bad_registrations_are_refused(args, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        register_method(*args, **kwargs)
    assert "Toy" not in METHODS


def test_a_setting_that_collides_with_a_config_key_is_refused():
    class Clash(ToyMethod):
        SETTINGS = ToyMethod.SETTINGS + (Setting("device", 0, in_range(0, 1), "clashes"),)

    with registered_method("Clash", Clash):
        with pytest.raises(ValueError, match="MODEL.DEVICE"):
            get_cfg()


def test_a_toy_method_trains_through_the_engine_with_its_own_setting(toy, tmp_path):
    root = write_imagefolder(str(tmp_path / "data"), num_classes=2, train_per_class=8,
                                      val_per_class=4, size=48)
    yaml = tmp_path / "toy_R18.yaml"  # what a new method's configs/pretrain/<name>_*.yaml holds
    yaml.write_text(f"_BASE_: {BASE}\nMODEL:\n  METHOD: Toy\n  ARCH: resnet18\n  WIDTH: 0.25\n")
    opts = tiny_opts(root, tmp_path / "out", "MODEL.PULL", 0.5, "VIEWS.IMAGE_SIZE", 32, "DATA.NUM_WORKERS", 0,
                     "SOLVER.IMS_PER_BATCH", 8, "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 2,
                     "LOG.PERIOD", 1, "LOG.PROGRESS_BAR", "False", "KNN.ENABLED", "True", "KNN.K", 3,
                     "KNN.TRAIN_SAMPLES", 0, "KNN.VAL_SAMPLES", 0, "LINEAR.EPOCHS", 1,
                     "LINEAR.ITERS_PER_EPOCH", 1, "LINEAR.IMS_PER_BATCH", 8)
    cfg = load_cfg(str(yaml), opts)
    with one_thread():
        ckpt = run_pretraining(cfg)
        result = run_linear_eval(cfg, ckpt)  # takes the toy's .encoder
    state = load_checkpoint(ckpt)
    assert state["method"] == "Toy" and state["iteration"] == 2 and "PULL: 0.5" in state["config"]
    assert any(k.startswith("encoder.") for k in state["model"])
    records = [json.loads(line) for line in open(tmp_path / "out" / "metrics.jsonl")]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 2
    for r in steps:  # the command-line 0.5, not the preset's 0.25 or the class's 1.0
        assert r["loss"] == pytest.approx(0.5 * r["gap"], rel=1e-5) and r["gap"] > 0
    assert [r["epoch"] for r in records if "knn_top1" in r] == [0]  # the monitor used .encoder
    assert 0.0 <= result["top1"] <= 100.0
