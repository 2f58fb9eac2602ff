"""Ctrl-C as a stop signal, by the pieces a subprocess run cannot time reliably: the loader workers
outlive a SIGINT (the main process stops them), and the stop hook's first/second signal rule.

The whole-command behaviour (SIGINT to the process group, checkpoint, resume to the uninterrupted
run's weights) is tests/test_pretrain_engine.py::test_ctrl_c_checkpoints_and_exits_cleanly_...
"""
import os
import signal
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from infomin.pretrain.data import WorkerSeeder
from infomin.pretrain.hooks import StopHook


class _SlowPids(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        time.sleep(0.2)
        return torch.tensor([os.getpid(), i])


def test_a_loader_worker_survives_ctrl_c_so_the_epoch_can_finish():
    loader = DataLoader(_SlowPids(), batch_size=1, num_workers=1, worker_init_fn=WorkerSeeder(0, 0),
                        prefetch_factor=1)
    seen = []
    for batch in loader:
        pid, i = batch[0].tolist()
        if not seen:
            os.kill(pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the worker too
        seen.append(i)
    assert seen == list(range(6))


def test_first_signal_requests_a_stop_a_quick_repeat_is_the_same_request_a_later_one_stops_now(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    hook = StopHook(stop_at=10, total=10, comm=torch.device("cpu"), repeat_window=1.0)
    hook._handle(signal.SIGINT, None)
    assert hook.requested
    clock[0] += 0.5  # torchrun forwards the Ctrl-C its worker already got from the terminal
    hook._handle(signal.SIGINT, None)
    clock[0] += 2.0  # the user presses Ctrl-C again
    with pytest.raises(SystemExit) as e:
        hook._handle(signal.SIGINT, None)
    assert e.value.code == 128 + signal.SIGINT
