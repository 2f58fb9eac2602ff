"""MODEL.BN_SPLITS auto: BatchNorm groups of 32 images per process, as the reference's 32 per GPU.

Oracles: hand-computed group counts (B / 32 where 32 divides B); the SplitBatchNorm2d modules of
the method the engine really builds; the config recorded in the checkpoint.
"""
import pytest
import torch

import infomin.pretrain.build as build
from infomin.methods import build_method
from infomin.models import SplitBatchNorm2d, resolve_bn_splits
from infomin.pretrain.checkpoint import load_checkpoint
from infomin.pretrain.config import load_cfg
from infomin.datasets import write_imagefolder
from infomin.pretrain.engine import run_pretraining

from _methods_helpers import TINY as TINY_SETTINGS
from _pretrain_helpers import REPO, TINY, one_thread, tiny_opts

R50 = f"{REPO}/configs/pretrain/infomin_R50_200ep.yaml"


@pytest.mark.parametrize("batch, splits", [
    (256, 8), (128, 4), (64, 2), (32, 1),  # groups of exactly 32
    (16, 1), (48, 1), (63, 1),  # smaller than two groups: the whole batch
    (80, 2), (96, 3), (100, 2),  # 32 does not divide: the most equal groups of more than 32
    (None, 1),  # batch unknown
])
def test_auto_gives_groups_of_at_least_32_images(batch, splits):
    assert resolve_bn_splits("auto", batch) == splits
    assert resolve_bn_splits(3, batch) == 3  # an explicit number is kept


def _bn_splits(module):
    """Groups of every BatchNorm2d in `module` (1 for a plain one)."""
    return {getattr(m, "splits", 1) for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)}


@pytest.mark.parametrize("world, splits", [(1, 8), (2, 4), (8, 1)])  # global batch 256
def test_the_engines_resolution_gives_each_process_groups_of_32(world, splits):
    cfg = load_cfg(R50, ["MODEL.ARCH", "resnet18", "MODEL.WIDTH", "0.125", "MODEL.QUEUE_SIZE", "16"])
    assert cfg.MODEL.BN_SPLITS is None  # unset: the method's default, auto
    resolved = build.resolve_for_batch(cfg, cfg.SOLVER.IMS_PER_BATCH // world)
    assert resolved.MODEL.BN_SPLITS == splits and resolved.is_frozen()
    assert "BN_SPLITS: null" in cfg.dump()  # the input is not changed
    method = build.build_method(resolved, dataset_size=10, num_classes=2)
    assert _bn_splits(method.encoder) == _bn_splits(method.encoder_ema) == {splits}
    if splits > 1:
        assert all(type(m) is SplitBatchNorm2d for m in method.encoder.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))


def test_explicit_values_win_and_auto_can_be_asked_for():
    cfg = load_cfg(R50, ["MODEL.BN_SPLITS", "2"])
    assert build.resolve_for_batch(cfg, 256).MODEL.BN_SPLITS == 2
    cfg = load_cfg(R50, ["MODEL.BN_SPLITS", "auto"])
    assert build.resolve_for_batch(cfg, 128).MODEL.BN_SPLITS == 4
    bank = load_cfg(f"{REPO}/configs/pretrain/insdis_R50_200ep.yaml")
    assert build.resolve_for_batch(bank, 256).MODEL.BN_SPLITS is None  # no queue, no BN groups
    with pytest.raises(ValueError, match="bn_splits must be a positive int or 'auto'"):
        build_method("InfoMin", **TINY_SETTINGS, bn_splits="many")


def test_the_library_resolves_auto_from_the_batch_it_is_given():
    assert build_method("InfoMin", **TINY_SETTINGS, batch_per_process=256).settings["bn_splits"] == 8
    assert build_method("CMCv2", **TINY_SETTINGS, batch_per_process=64).settings["bn_splits"] == 2
    assert build_method("MoCo", **TINY_SETTINGS).settings["bn_splits"] == 1  # batch unknown
    assert build_method("MoCo", **TINY_SETTINGS, bn_splits=2, batch_per_process=256).settings["bn_splits"] == 2
    assert build_method("InsDis", **TINY_SETTINGS, dataset_size=8, batch_per_process=256).settings.get(
        "bn_splits") is None


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_imagefolder(str(tmp_path_factory.mktemp("gen")), num_classes=2,
                             train_per_class=32, val_per_class=1, size=32)


def test_default_run_splits_batchnorm_records_the_number_and_does_not_warn(root, tmp_path, monkeypatch, caplog):
    """One process, batch 64, BN_SPLITS unset: 2 groups of 32 in both encoders, no shuffle-BN warning,
    the checkpoint's config says 2 and its weights are plain BatchNorm keys."""
    built = []
    real = build.build_method
    monkeypatch.setattr(build, "build_method", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    opts = tiny_opts(root, tmp_path, "SOLVER.IMS_PER_BATCH", 64, "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 1,
                     "MODEL.JIGSAW", "False", "VIEWS.IMAGE_SIZE", 32, "MODEL.QUEUE_SIZE", 128,
                     "LOG.TENSORBOARD", "False")
    with one_thread(), caplog.at_level("WARNING", logger="infomin.pretrain.engine"):
        ckpt = run_pretraining(load_cfg(TINY, opts))
    assert "SHUFFLE_BN has no effect" not in caplog.text
    (method,) = built
    assert _bn_splits(method.encoder) == _bn_splits(method.encoder_ema) == {2}
    state = load_checkpoint(ckpt)
    assert "BN_SPLITS: 2" in state["config"]
    assert "BN_SPLITS: 2" in (tmp_path / "config.yaml").read_text()
    assert "encoder.layer1.0.bn1.running_mean" in state["model"]
    assert not any(".splits" in k for k in state["model"])
