"""Checkpoint I/O: a failed write never leaves a half file, auto-resume picks the newest, RNG
states survive a weights_only round trip."""
import os
import random

import numpy as np
import pytest
import torch

from infomin.atomic import atomic_torch_save
from infomin.pretrain import checkpoint as ck


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint_00000010.pth"
    atomic_torch_save(str(path), {"x": torch.ones(3)})
    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        f.write(b"partial bytes")  # what a kill during the write would leave behind
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save(str(path), {"x": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(3))
    assert os.listdir(tmp_path) == [path.name]


def test_auto_resume_picks_the_newest_and_ignores_temp_files(tmp_path):
    assert ck.resolve_resume("auto", str(tmp_path)) is None  # nothing yet: a fresh start
    for it in (3, 12, 6):
        (tmp_path / ck.checkpoint_name(it)).write_bytes(b"")
    (tmp_path / ".tmp-abc.pth").write_bytes(b"")
    assert ck.resolve_resume("auto", str(tmp_path)).endswith("checkpoint_00000012.pth")
    (tmp_path / ck.FINAL_NAME).write_bytes(b"")
    assert ck.find_latest(str(tmp_path)).endswith(ck.FINAL_NAME)
    with pytest.raises(FileNotFoundError, match="no such checkpoint.*auto"):
        ck.resolve_resume(str(tmp_path / "missing.pth"), str(tmp_path))


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    atomic_torch_save(str(tmp_path / "r.pth"), {"rng": ck.rng_state()})
    want = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.normal())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ck.set_rng_state(torch.load(tmp_path / "r.pth", weights_only=True)["rng"])
    got = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.normal())
    assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[2] == want[2] and got[3] == want[3]


def test_foreign_files_are_refused_with_a_hint(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not an infomin pretraining checkpoint.*infomin-convert-pretrained"):
        ck.load_checkpoint(str(tmp_path / "other.pth"))
