"""torch.distributed set-up for `torchrun` launches, and the few collectives the engine needs.

Without torchrun's environment (RANK/WORLD_SIZE) everything degrades to a single process, so the
same code path serves a laptop, one GPU node and many nodes.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from infomin.device import resolve_device as _resolve_device
# the engine's names for the method library's world-of-one-aware helpers
from infomin.distributed import is_dist as is_initialized
from infomin.distributed import rank as get_rank
from infomin.distributed import world_size as get_world_size


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(name: str) -> torch.device:
    """MODEL.DEVICE read by `infomin.device.resolve_device`; a bare `cuda` (or `auto` with a GPU)
    becomes this process's GPU (LOCAL_RANK), which is made current."""
    device = _resolve_device(name, "MODEL.DEVICE")
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device, timeout_min: int = 30) -> bool:
    """Join the process group described by torchrun's env vars; NCCL for CUDA, gloo for CPU.

    Returns True when running distributed. A no-op when already initialised or not under torchrun.
    """
    if is_initialized():
        return True
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend,
        timeout=datetime.timedelta(minutes=timeout_min),
        device_id=device if device.type == "cuda" else None,
    )
    return True


def shutdown() -> None:
    """Leave the process group, every rank together: a rank that tears its group down while
    another still uses it can abort that one at exit ("terminate called without an active
    exception" under torchrun). Call it on the success path; after an error just destroy."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def broadcast_module_state(module: torch.nn.Module, src: int = 0) -> None:
    """Make every rank hold rank `src`'s parameters and buffers (queues, EMA copies, BN stats)."""
    if not is_initialized():
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equally sized tensors from every rank along dim 0 (rank order)."""
    if not is_initialized():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def all_gather_object(obj):
    if not is_initialized():
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap_ddp(module: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False):
    """DistributedDataParallel that never re-broadcasts buffers in forward: the queues stay equal
    by construction and BatchNorm statistics are per rank. torch >= 2.13 calls this
    `forward_sync_buffers`; older releases (the GPU nodes' torch 2.11) `broadcast_buffers`."""
    from inspect import signature

    from torch.nn.parallel import DistributedDataParallel as DDP

    no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in signature(DDP.__init__).parameters
               else "broadcast_buffers")
    return DDP(module, device_ids=[device.index] if device.type == "cuda" else None,
               find_unused_parameters=find_unused_parameters, **{no_sync: False})


def backend_device(device: torch.device) -> torch.device:
    """Where tensors for collectives must live: NCCL needs CUDA, gloo takes CPU tensors."""
    return device if device.type == "cuda" else torch.device("cpu")
