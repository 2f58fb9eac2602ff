"""One pretraining step on the device, and how the model is prepared for it.

`TrainStep` is what `PretrainTrainer` runs for each batch (and what benchmarks/bench_step.py
times): one non-blocking host-to-device copy per tensor of the batch, the forward pass under
autocast, the (scaled) backward pass, optimizer and lr-scheduler steps and the momentum update.
Nothing in it waits for the device: no `.item()`, no host-side test of a device value.

`prepare_model` applies MODEL.CHANNELS_LAST (NHWC convolution weights, which tensor cores and
cuDNN prefer; the batch is converted on the device after the copy) and MODEL.COMPILE
(`torch.compile` of the encoders, in place, so parameter names and checkpoints do not change).
"""
from __future__ import annotations

import importlib.util
import os
import shutil

import torch
import torch.nn as nn

COMPILED_MODULES = ("encoder", "encoder_ema")  # the networks that do nearly all the work


def resolve_channels_last(value, device: torch.device) -> bool:
    """MODEL.CHANNELS_LAST: None/"auto" = on for CUDA, off on the CPU (where oneDNN's NCHW
    convolutions are as fast and the default step stays bit-identical to NCHW); True/False force."""
    if value is None or value == "auto":
        return device.type == "cuda"
    if isinstance(value, bool):
        return value
    raise ValueError(f"MODEL.CHANNELS_LAST must be auto (None), True or False, got {value!r}.")


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile (the inductor backend) cannot run on `device` here; None when it can."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "torch.compile on a GPU needs Triton (pip install triton)"
        return None
    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if not any(n and shutil.which(n) for n in names):
        return "torch.compile on the CPU needs a C++ compiler (g++ or clang++; or set CXX)"
    return None


def prepare_model(method: nn.Module, device: torch.device, *, channels_last: bool, compile: bool) -> nn.Module:
    """Move `method` to `device`, in channels-last layout if asked, and compile its encoders.
    Parameters stay the same objects (build the optimizer afterwards anyway)."""
    method = method.to(device)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)  # only 4-D tensors change layout
    if compile:
        reason = compile_unavailable(device)
        if reason:
            raise RuntimeError(f"MODEL.COMPILE True: {reason}; or set MODEL.COMPILE False.")
        for name in COMPILED_MODULES:
            module = getattr(method, name, None)
            if isinstance(module, nn.Module):
                # static shapes: each input size of training (views, jigsaw tiles) gets its own graph
                module.compile(dynamic=False)
    return method


def nhwc(t: torch.Tensor) -> torch.Tensor:
    """`t` in channels-last layout: [N, C, H, W] as NHWC; the jigsaw tiles [N, T, C, H, W] such
    that `flatten(0, 1)` (how the methods feed them to the encoder) is NHWC without a copy."""
    if t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if t.dim() == 5:
        return t.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return t


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    """The batch's tensors on `device`: one asynchronous copy each (the loader pins them on CUDA),
    then, for images, the layout change on the device."""
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value):
            value = value.to(device, non_blocking=True)
            if channels_last and value.is_floating_point():
                value = nhwc(value)
            out[key] = value
    return out


class TrainStep:
    """Callable: batch (host tensors) -> the method's outputs, after one optimizer step.

    `model` is what the forward pass calls (the method, or DDP around it); `method` has the
    momentum update. `autocast` is a factory of forward-pass contexts (a no-op for fp32)."""

    def __init__(self, *, model, method, optimizer, scheduler, scaler, autocast, device, channels_last: bool):
        self.model, self.method, self.optimizer, self.scheduler = model, method, optimizer, scheduler
        self.scaler, self.autocast, self.device, self.channels_last = scaler, autocast, device, channels_last

    def __call__(self, batch: dict) -> dict:
        data = to_device(batch, self.device, self.channels_last)
        with self.autocast():
            out = self.model(data)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["loss"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.method.momentum_update()
        return out
