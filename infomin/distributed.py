"""Small torch.distributed helpers that also work, as no-ops, in a single process.

The methods call these so that one code path serves a laptop run and a multi-node torchrun job:
every helper behaves as "world of one" when no process group is initialised.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_dist() -> bool:
    """True when a default process group is initialised (torchrun / init_process_group)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


@torch.no_grad()
def gather_sizes(n: int, device: torch.device) -> list[int]:
    """Number of rows each rank holds (lets gathers handle an uneven last batch)."""
    if not is_dist():
        return [n]
    local = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(sizes, local)
    return [int(s.item()) for s in sizes]


@torch.no_grad()
def all_gather_nograd(tensor: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate `tensor` from every rank along dim 0, in rank order; no gradient flows back.

    Ranks may hold different numbers of rows (pass `sizes` if already known, else they are
    gathered first). With one process this returns `tensor` itself (detached).
    """
    if not is_dist():
        return tensor.detach()
    tensor = tensor.detach().contiguous()
    if sizes is None:
        sizes = gather_sizes(tensor.shape[0], tensor.device)
    longest = max(sizes)
    if tensor.shape[0] < longest:
        pad = tensor.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))
        tensor = torch.cat([tensor, pad])
    parts = [torch.empty_like(tensor) for _ in sizes]
    dist.all_gather(parts, tensor)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


@torch.no_grad()
def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """In-place broadcast from `src` (no-op in one process); returns `tensor`."""
    if is_dist():
        dist.broadcast(tensor, src)
    return tensor


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every rank along dim 0, in rank order, with the gradient flowing
    back to each rank's own rows (in-batch negatives across processes: SimCLR's global batch).

    Every rank must hold the same number of rows (the training loader drops the last batch);
    with one process this returns `tensor` itself.
    """
    if not is_dist():
        return tensor
    sizes = gather_sizes(tensor.shape[0], tensor.device)
    if len(set(sizes)) != 1:
        raise ValueError(f"all_gather_with_grad needs the same number of rows on every rank, got {sizes} "
                         "(train with drop_last=True so every process gets a full batch)")
    import torch.distributed.nn.functional as dist_nn

    return torch.cat(dist_nn.all_gather(tensor.contiguous()))
