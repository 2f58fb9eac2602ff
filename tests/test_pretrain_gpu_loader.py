"""run_pretraining with DATA.LOADER gpu on the CPU (the batched device views on CPU tensors).

Oracles: an uninterrupted run (resume mid-epoch gives the same weights) and the CPU loader's own
bad-image behaviour (the same limits stop the run, a raised limit lets it go on).
"""
import shutil

import pytest
import torch

from infomin.pretrain.checkpoint import load_checkpoint
from infomin.pretrain.config import load_cfg
from infomin.datasets import write_imagefolder
from infomin.pretrain.data import BadImageError
from infomin.pretrain.engine import run_pretraining

from _pretrain_helpers import TINY, one_thread, tiny_opts

GPU = ("DATA.LOADER", "gpu")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_imagefolder(str(tmp_path_factory.mktemp("gen")), num_classes=2,
                                      train_per_class=16, val_per_class=2, size=64)


def test_gpu_loader_on_cpu_trains_and_resumes_mid_epoch_to_the_same_weights(root, tmp_path):
    with one_thread():
        full = run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "full", *GPU)))
        stopped = run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "res", *GPU, "SOLVER.STOP_ITER", 3)))
        resumed = run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "res", *GPU)), resume="auto")
    assert stopped.endswith("checkpoint_00000003.pth")  # mid-epoch 2 (2 iterations per epoch)
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert a["iteration"] == b["iteration"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert "DATA:\n" in a["config"] and "LOADER: gpu" in a["config"]


def test_gpu_loader_counts_and_replaces_bad_images_as_the_cpu_loader_does(root, tmp_path):
    bad_root = tmp_path / "data"
    shutil.copytree(root, bad_root)
    classes = sorted((bad_root / "train").iterdir())  # the generator's class folders and files, by name
    truncated = sorted(classes[1].iterdir())[3]
    truncated.write_bytes(truncated.read_bytes()[:200])  # rejected by the worker, as PIL rejects it
    garbled = sorted(classes[0].iterdir())[5]
    data = garbled.read_bytes()
    sos = data.rfind(b"\xff\xda")
    garbled.write_bytes(data[:sos] + b"\xff\xda\x00\x02" + b"\xff\x00" * 50 + b"\xff\xd9")  # only decoding fails
    with one_thread(), pytest.raises(BadImageError) as e:  # default limit: 0.1% of the images
        run_pretraining(load_cfg(TINY, tiny_opts(bad_root, tmp_path / "o1", *GPU, "SOLVER.EPOCHS", 1)))
    assert "DATA.MAX_BAD_FRACTION" in str(e.value)
    assert str(truncated) in str(e.value) or str(garbled) in str(e.value)
    with one_thread():  # under a limit the user raised, the run goes on; both files are counted
        out = run_pretraining(load_cfg(TINY, tiny_opts(bad_root, tmp_path / "o2", *GPU, "DATA.MAX_BAD_FRACTION", 0.1,
                                                       "DATA.MAX_BAD_IMAGES", 2, "SOLVER.EPOCHS", 1)))
    assert out.endswith("model_final.pth")
    with one_thread(), pytest.raises(BadImageError) as e:  # two bad files > DATA.MAX_BAD_IMAGES 1 ...
        run_pretraining(load_cfg(TINY, tiny_opts(bad_root, tmp_path / "o3", *GPU, "DATA.MAX_BAD_FRACTION", 0.1,
                                                 "DATA.MAX_BAD_IMAGES", 1, "SOLVER.EPOCHS", 1)))
    assert str(truncated) in str(e.value) and str(garbled) in str(e.value) and "decode failed" in str(e.value)


def test_bench_loader_tiny_on_cpu_writes_every_figure(tmp_path):
    import json
    import subprocess
    import sys

    from _pretrain_helpers import REPO

    out = tmp_path / "loader.json"
    subprocess.run([sys.executable, "benchmarks/bench_loader.py", "--tiny", "--device", "cpu", "--json", str(out)],
                   cwd=REPO, check=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    figures = json.loads(out.read_text())
    for key in ("cpu_loader_pairs_per_s", "device_views_pairs_per_s", "gpu_loader_pairs_per_s",
                "device_views_vs_cpu_loader", "gpu_loader_vs_cpu_loader"):
        assert figures[key] > 0, key
    assert figures["device"] == "cpu" and figures["machine"]["cpu"] and figures["machine"]["gpu"] is None
