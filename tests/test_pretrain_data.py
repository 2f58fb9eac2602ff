"""Data: clear errors for missing roots, bad-image accounting with paths, resumable sampling,
augmentation randomness as a function of (seed, epoch, index) only."""
import random

import numpy as np
import pytest
import torch

from infomin.pretrain.build import build_train_transform
from infomin.pretrain.config import load_cfg
from infomin.pretrain.data import (BadImageError, BadImageTracker, ResumableSampler, RobustImageFolder,
                                   WorkerSeeder, build_loader)
from infomin.datasets import write_imagefolder

from _pretrain_helpers import TINY, tiny_opts


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_imagefolder(str(tmp_path_factory.mktemp("gen")), num_classes=2,
                                      train_per_class=4, val_per_class=2, size=40)


@pytest.fixture(scope="module")
def transform(root):
    return build_train_transform(load_cfg(TINY, tiny_opts(root, "/unused")))


def test_missing_root_and_split_say_what_layout_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="DATA.ROOT .* does not exist.*train/<class>"):
        RobustImageFolder(str(tmp_path / "nope"), "train", lambda x: x)
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="has no 'train' folder"):
        RobustImageFolder(str(tmp_path), "train", lambda x: x)
    (tmp_path / "train" / "cls").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="No images found"):
        RobustImageFolder(str(tmp_path), "train", lambda x: x)


def test_corrupt_and_truncated_images_are_reported_by_path_then_stop(tmp_path, transform):
    root = write_imagefolder(str(tmp_path), num_classes=2, train_per_class=3, val_per_class=1, size=40)
    first, second = (sorted(p.iterdir()) for p in sorted((tmp_path / "train").iterdir()))
    good = first[0]
    data = good.read_bytes()
    truncated = first[1]
    truncated.write_bytes(data[: len(data) // 2])
    garbage = second[2]
    garbage.write_bytes(b"not an image at all")
    ds = RobustImageFolder(root, "train", transform)
    samples = [ds[i] for i in range(len(ds))]
    reported = [s["bad"] for s in samples if s["bad"]]
    assert len(reported) == 2
    assert str(truncated) in reported[0] and str(garbage) in reported[1]
    assert all(s["view1"].shape == (3, 64, 64) for s in samples)  # replaced by readable images

    tracker = BadImageTracker(len(ds), max_images=5, max_fraction=0.5)
    tracker.update([s["bad"] for s in samples])
    tracker.check()  # 2 of 6: under both limits
    assert len(tracker.paths) == 2
    tracker.update([s["bad"] for s in samples])  # the same files again are not new
    assert len(tracker.paths) == 2
    with pytest.raises(BadImageError, match="4 unreadable images"):
        tracker.check(total=4)  # other ranks saw 2 more: 4 > 0.5 * 6
    strict = BadImageTracker(len(ds), max_images=1, max_fraction=-1)
    strict.update([s["bad"] for s in samples])
    with pytest.raises(BadImageError) as e:
        strict.check()
    assert str(truncated) in str(e.value) and "DATA.MAX_BAD_IMAGES" in str(e.value)


def test_sampler_shards_cover_the_permutation_and_resume_skips_exactly():
    full = ResumableSampler(10, 1, 0, seed=3)
    full.set_epoch(2)
    perm = full.indices()
    assert sorted(perm) == list(range(10))
    again = ResumableSampler(10, 1, 0, seed=3)
    again.set_epoch(2)
    assert again.indices() == perm  # the same permutation, from (seed, epoch) only
    again.set_epoch(3)
    assert again.indices() != perm
    shards = [ResumableSampler(10, 3, r, seed=3) for r in range(3)]
    for s in shards:
        s.set_epoch(2)
    assert [s.indices() for s in shards] == [(perm + perm[:2])[r::3] for r in range(3)]
    shards[1].set_epoch(2, start=2)
    assert list(shards[1]) == (perm + perm[:2])[1::3][2:] and len(shards[1]) == 2


def test_views_depend_on_seed_epoch_index_not_on_workers_or_global_rng(root, transform):
    ds = RobustImageFolder(root, "train", transform, seed=7)
    ds.set_epoch(1)
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(9)
    state = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    a = ds[3]
    # loading in the main process must not disturb the training loop's RNG streams
    assert torch.equal(torch.get_rng_state(), state[0])
    assert (np.random.get_state()[1] == state[1]).all() and random.getstate() == state[2]
    torch.manual_seed(999)
    b = ds[3]
    assert torch.equal(a["view1"], b["view1"]) and torch.equal(a["jigsaw"], b["jigsaw"])
    assert not torch.equal(a["view1"], a["view2"])  # two independent views
    ds.set_epoch(2)
    assert not torch.equal(ds[3]["view1"], a["view1"])  # a new epoch, new views

    def batches(workers):
        sampler = ResumableSampler(len(ds), 1, 0, seed=1)
        sampler.set_epoch(1)
        ds.set_epoch(1)
        return [b["view1"] for b in build_loader(ds, 4, sampler, workers, WorkerSeeder(1, 0), drop_last=True)]

    for x, y in zip(batches(0), batches(2)):
        assert torch.equal(x, y)
