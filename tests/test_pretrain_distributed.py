"""A real 2-process `torchrun` run (gloo, CPU) of the tiny InfoMin recipe on generated JPEGs.

It exercises the distributed paths (DDP, shuffle-BN across ranks, globally gathered keys, the
sharded kNN monitor, rank-0-only checkpoints with every rank's RNG state). The loss must fall.
"""
import json
import os
import socket
import subprocess
import sys

import torch

from infomin.datasets import write_imagefolder

from _pretrain_helpers import REPO, TINY, tiny_opts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_torchrun_run_learns(tmp_path):
    root = write_imagefolder(str(tmp_path / "data"), num_classes=4, train_per_class=4,
                                      val_per_class=3, size=64)
    out = tmp_path / "out"
    # 16 images, global batch 16 (8 per process), a one-batch queue and constant lr: each
    # instance is seen every iteration, so instance discrimination visibly improves in 12 steps
    opts = tiny_opts(root, out, "KNN.ENABLED", "True", "KNN.PERIOD", 6, "MODEL.QUEUE_SIZE", 16, "MODEL.SHUFFLE_BN", "True",
                     "MODEL.MOMENTUM", 0.9, "SOLVER.BASE_LR", 0.1, "SOLVER.SCALE_LR", "False",
                     "SOLVER.SCHEDULE", "step", "SOLVER.EPOCHS", 12, "CHECKPOINT.PERIOD", 6)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           os.path.join(REPO, "tools", "pretrain.py"), "--config-file", TINY, *opts]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]

    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 12
    # iteration 1 contrasts against the random initial queue; from iteration 2 on it is full
    early, late = sum(losses[1:5]) / 4, sum(losses[-4:]) / 4
    assert late < early - 0.15, losses
    assert [r["epoch"] for r in records if "knn_top1" in r] == [5, 11]

    ckpt = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    assert len(ckpt["rng"]["ranks"]) == 2
    assert not torch.equal(ckpt["rng"]["ranks"][0]["torch"], ckpt["rng"]["ranks"][1]["torch"])
    assert ckpt["model"]["memory.ptr"].item() == 0  # 12 steps x 16 gathered keys in a 16-key queue
    kept = sorted(f for f in os.listdir(out) if f.endswith(".pth"))
    assert kept == ["checkpoint_00000006.pth", "model_final.pth"]  # rolling ones pruned, period kept


def test_wrap_ddp_picks_the_buffer_keyword_the_installed_torch_has(monkeypatch):
    """torch >= 2.13 names it forward_sync_buffers, torch 2.11 (the GPU nodes') broadcast_buffers:
    either way buffers are not re-broadcast in forward."""
    import torch.nn.parallel

    from infomin.pretrain import distributed as du

    seen = {}

    class NewDDP:
        def __init__(self, module, device_ids=None, find_unused_parameters=False, forward_sync_buffers=None,
                     broadcast_buffers=None):
            seen.update(forward_sync_buffers=forward_sync_buffers, broadcast_buffers=broadcast_buffers)

    class OldDDP:
        def __init__(self, module, device_ids=None, find_unused_parameters=False, broadcast_buffers=True):
            seen.update(broadcast_buffers=broadcast_buffers)

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", NewDDP)
    du.wrap_ddp(torch.nn.Linear(1, 1), torch.device("cpu"))
    assert seen == {"forward_sync_buffers": False, "broadcast_buffers": None}
    seen.clear()
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", OldDDP)
    du.wrap_ddp(torch.nn.Linear(1, 1), torch.device("cpu"))
    assert seen == {"broadcast_buffers": False}


def test_ctrl_c_under_torchrun_checkpoints_once_without_worker_tracebacks(tmp_path):
    """Ctrl-C reaches torchrun and its workers (one process group), and torchrun forwards it to
    them again: each worker takes it as one stop request, rank 0 checkpoints and says how to go on,
    and no worker prints a KeyboardInterrupt traceback (torchrun reports its own signal only)."""
    import signal
    import time

    root = write_imagefolder(str(tmp_path / "data"), num_classes=4, train_per_class=4, val_per_class=3, size=64)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           os.path.join(REPO, "tools", "pretrain.py"), "--config-file", TINY,
           *tiny_opts(root, out, "SOLVER.IMS_PER_BATCH", 8, "SOLVER.EPOCHS", 50)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").exists() and '"loss"' in (out / "metrics.jsonl").read_text():
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    log = proc.communicate(timeout=120)[0]
    for rank in (0, 1):
        assert log.count(f"r{rank}] infomin.pretrain.hooks WARNING: Received SIGINT") == 1, log[-4000:]
    assert "continue with --resume auto" in log
    assert "KeyboardInterrupt" not in log and log.count("Traceback") <= 1, log[-4000:]
    saved = [f for f in os.listdir(out) if f.endswith(".pth")]
    assert len(saved) == 1 and saved[0].startswith("checkpoint_"), saved
