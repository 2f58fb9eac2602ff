"""Hooks of the pretraining (and linear-evaluation) trainers: checkpoints, metrics, kNN monitor,
stop signals, progress bar. Each does one job at its points of the loop (`infomin.pretrain.trainer`).

Registration order matters where hooks act on the same step: metrics before the stop decision
(which happens at log points), the kNN monitor before the epoch-end checkpoint, and the
checkpoint hook last so that it saves what the others decided.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from typing import Callable

import torch

from . import distributed as du
from .checkpoint import Checkpointer
from .trainer import HookBase

logger = logging.getLogger(__name__)


class PeriodicCheckpointHook(HookBase):
    """Checkpoints after the steps `is_due(done)` names (never the last one: that one is final),
    when a hook asked to stop (then logs how to continue), and `final` when training completes.

    `before_save()` runs before a scheduled (not a stop) checkpoint, e.g. to refuse a NaN loss.
    `last_path` is the newest file written.
    """

    def __init__(self, checkpointer: Checkpointer, is_due: Callable[[int], bool],
                 before_save: Callable[[int], None] | None = None):
        self.checkpointer, self.is_due, self.before_save = checkpointer, is_due, before_save
        self.last_path = None

    def after_step(self):
        done = self.trainer.iter + 1
        if self.trainer.stop_requested:
            self.last_path = self.checkpointer.save(done)
            logger.info("Stopped at iteration %d; continue with --resume auto.", done)
        elif done < self.trainer.max_iter and self.is_due(done):
            if self.before_save is not None:
                self.before_save(done)
            self.last_path = self.checkpointer.save(done)

    def after_train(self):
        t = self.trainer
        if not t.stop_requested and t.iter >= t.max_iter and t.iter > t.start_iter:
            self.last_path = self.checkpointer.save(t.iter, final=True)


class MetricsWriter:
    """Rank-0 sinks: TensorBoard and a JSON-lines file (one record per log period / epoch)."""

    def __init__(self, output_dir: str, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.writer = None
        self.path = os.path.join(output_dir, "metrics.jsonl")
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.path.join(output_dir, "tb"))

    def write(self, step: int, record: dict):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"iteration": step, **record}) + "\n")
        if self.writer is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self.writer.add_scalar(k, v, step)

    def close(self):
        if self.writer is not None:
            self.writer.close()


class MetricsHook(HookBase):
    """At log points: the bad-image limit over all ranks, then the step's scalars averaged over
    ranks (a NaN loss stops the run here) with lr, data time and epoch, into `trainer.storage`
    and the writer. Between log points nothing waits for the device."""

    def __init__(self, writer: MetricsWriter, bad_images, comm: torch.device, world: int):
        self.writer, self.bad_images, self.comm, self.world = writer, bad_images, comm, world

    def after_step(self):
        t = self.trainer
        done = t.iter + 1
        if not t.is_log_point(done):
            return
        self.bad_images.check(du.all_reduce_sum(torch.tensor([len(self.bad_images.paths)], device=self.comm)).item())
        record = reduce_scalars(t.outputs, self.comm, self.world, done)
        record.update(lr=t.lr, data_time=t.data_time, epoch=t.epoch)
        t.storage.update(record)
        self.writer.write(done, record)

    def after_train(self):
        self.writer.close()


class StopHook(HookBase):
    """Ends the run at SOLVER.STOP_ITER or on a stop signal: SIGTERM/SIGUSR1 (cluster pre-emption)
    or SIGINT (Ctrl-C), in one process or in each torchrun worker.

    The first signal is acted on at the next log point, where all ranks agree on it (the
    checkpoint hook then saves, says how to continue, and training ends cleanly); a second one
    stops at once (exit status 128 + signal). A repeat within `repeat_window` seconds counts as
    the same request: Ctrl-C under torchrun reaches a worker twice, from the terminal and again
    forwarded by torchrun.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self, stop_at: int, total: int, comm: torch.device, repeat_window: float = 1.0):
        self.stop_at, self.total, self.comm = stop_at, total, comm
        self.repeat_window = repeat_window
        self.requested = False
        self._first_at = None
        self._old = {}

    def before_train(self):
        for sig in self.SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass

    def _handle(self, signum, frame):
        now = time.monotonic()
        if self.requested:
            if now - self._first_at < self.repeat_window:
                return  # the same request delivered twice (terminal + torchrun)
            raise SystemExit(128 + signum)  # a second request: the user (or scheduler) means it, stop now
        name = signal.Signals(signum).name
        logger.warning("Received %s: will checkpoint and stop at the next log point (send it again to "
                       "stop immediately%s).", name, ", e.g. a second Ctrl-C" if signum == signal.SIGINT else "")
        self.requested, self._first_at = True, now

    def after_step(self):
        done = self.trainer.iter + 1
        if not self.trainer.is_log_point(done):
            return
        stop = agree(self.requested, self.comm)  # at log points only: signals wait a few steps
        if (stop or done == self.stop_at) and done < self.total:
            self.trainer.request_stop()

    def after_train(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


class KNNHook(HookBase):
    """The weighted-kNN monitor at the end of every `period`-th epoch and the last one (not when
    the run is stopping); loaders are built on first use."""

    def __init__(self, monitor: Callable[[], float], writer: MetricsWriter, iters_per_epoch: int,
                 epochs: int, period: int, main: bool):
        self.monitor, self.writer = monitor, writer
        self.iters_per_epoch, self.epochs, self.period, self.main = iters_per_epoch, epochs, period, main

    def after_step(self):
        done = self.trainer.iter + 1
        if done % self.iters_per_epoch or self.trainer.stop_requested:
            return
        epochs_done = done // self.iters_per_epoch
        if epochs_done % self.period and epochs_done != self.epochs:
            return
        acc = self.monitor()
        self.writer.write(done, {"knn_top1": acc, "epoch": epochs_done - 1})
        if self.main:
            logger.info("epoch %d: kNN top-1 %.2f%%", epochs_done, acc)


class ProgressBarHook(HookBase):
    """A tqdm bar on rank 0, with the latest logged loss, lr and data time."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.bar = total, desc, None

    def before_train(self):
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, initial=self.trainer.start_iter, dynamic_ncols=True, desc=self.desc)

    def after_step(self):
        self.bar.update(1)
        t = self.trainer
        if t.is_log_point(t.iter + 1) and "loss" in t.storage:
            s = t.storage
            self.bar.set_postfix(loss=f"{s['loss']:.4f}", lr=f"{s['lr']:.4g}", data=f"{s['data_time']:.3f}s",
                                 epoch=s["epoch"])

    def after_train(self):
        if self.bar is not None:
            self.bar.close()


def check_finite(loss: torch.Tensor, iteration: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"Loss is {loss.item()} at iteration {iteration}; lower SOLVER.BASE_LR or use MODEL.PRECISION fp32.")


def reduce_scalars(out: dict, comm, world: int, iteration: int) -> dict:
    """The method's logged scalars averaged over ranks (a NaN loss stops the run here)."""
    check_finite(out["loss"], iteration)
    vals = {k: v.detach().float() for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}
    names = sorted(vals)
    stacked = torch.stack([vals[n] for n in names]).to(comm)
    du.all_reduce_sum(stacked)
    return {n: float(v) / world for n, v in zip(names, stacked)}


def agree(flag: bool, comm) -> bool:
    """True on every rank if any rank was asked to stop."""
    if not du.is_initialized():
        return flag
    t = torch.tensor([float(flag)], device=comm)
    du.all_reduce_sum(t)
    return bool(t.item() > 0)
