"""learn_views on the STL-10 binary layout (stl10_binary/*.bin), read through torchvision's STL10.

The files are written byte for byte in STL-10's format (uint8, 3x96x96 per image stored column-major,
labels 1..10 in *_y.bin); only torchvision's md5 check of the published files is bypassed, since
these are not the published files.
"""
import json

import numpy as np
import pytest
import torch
from torchvision.datasets import STL10

from infomin import viewlearn as lv
from infomin.cli import learn_views as lv_cli


def _write_split(folder, name, images, labels=None):
    # STL-10 stores each image as 3 x 96 x 96 in column-major order: transpose H and W on disk
    (folder / f"{name}_X.bin").write_bytes(np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes())
    if labels is not None:
        (folder / f"{name}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())


@pytest.fixture
def stl10_root(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    splits = {}
    for name, n in (("train", 20), ("test", 10), ("unlabeled", 30)):
        images = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)  # N, H, W, C as viewed
        labels = None if name == "unlabeled" else rng.integers(0, 10, n)
        _write_split(folder, name, images, labels)
        splits[name] = (images, labels)
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)
    return tmp_path / "stl10", splits


def test_stl10_layout_is_detected_and_read_in_the_right_orientation(stl10_root):
    root, splits = stl10_root
    cfg = lv.load_cfg(None, ["DATA.ROOT", str(root), "DATA.IMAGE_SIZE", "96", "OUTPUT_DIR", str(root / "o")])
    data = lv.build_data(cfg)
    assert len(data.unlabeled) == 30 + 20 and len(data.labeled) == 20 and len(data.test) == 10
    # the evaluation transform of a 96 px image at size 96 keeps every pixel: compare with the source
    img, label = data.test[3]
    want = torch.from_numpy(splits["test"][0][3]).permute(2, 0, 1).float() / 255
    assert label == int(splits["test"][1][3])
    assert torch.allclose(img, want, atol=1e-6)


def test_learn_views_runs_on_stl10(stl10_root, tmp_path):
    root, _ = stl10_root
    out = tmp_path / "out"
    assert lv_cli.main(["DATA.ROOT", str(root), "OUTPUT_DIR", str(out), "LEARN.MODE", "semi",
                    "LEARN.STEPS", "2", "EVAL.STEPS", "2", "DATA.IMAGE_SIZE", "16", "LEARN.WIDTH", "0.125",
                    "EVAL.WIDTH", "0.125", "LEARN.BATCH_SIZE", "4", "LEARN.LABELED_BATCH_SIZE", "2",
                    "EVAL.BATCH_SIZE", "4", "DATA.NUM_WORKERS", "0", "EVAL.PROBE_EPOCHS", "1",
                    "EVAL.EVAL_BATCHES", "1", "DEVICE", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_roundtrip_error"] < 1e-5
    assert set(summary["results"]) == {"learned (semi, vp)", "raw RGB"}
