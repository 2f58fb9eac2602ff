"""Shuffle-BN across ALL ranks (MoCo's defence against BatchNorm "cheating").

The key images of the whole job are gathered, permuted by one random permutation drawn on rank 0
and broadcast, encoded (each rank takes its share of the permuted batch), gathered again and put
back in the original order. So a key's BatchNorm statistics come from a random subset of the
global batch, not from the rank that holds its query. Unlike PyContrast this is not limited to
one node, and ranks may hold different numbers of rows (an uneven last batch).
With one process the batch is permuted locally: a no-op for plain BatchNorm, and what shuffle-BN
needs when BatchNorm statistics come from groups of the batch (infomin.models.split_bn).
"""
from __future__ import annotations

from typing import Callable

import torch

from infomin import distributed as D


@torch.no_grad()
def shuffled_forward(
    encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode `x` with shuffle-BN; returns (keys for this rank's rows, keys of all ranks in rank order).

    The second output is the global batch of keys (what a MoCo queue enqueues); no extra gather
    is needed for it. No gradient flows (keys come from the momentum encoder).
    """
    if not D.is_dist() or D.world_size() == 1:
        perm = torch.randperm(x.shape[0], device=x.device)
        keys_shuffled = encode(x[perm])
        keys = torch.empty_like(keys_shuffled)
        keys[perm] = keys_shuffled
        return keys, keys
    sizes = D.gather_sizes(x.shape[0], x.device)
    x_all = D.all_gather_nograd(x, sizes)
    perm = torch.randperm(x_all.shape[0], device=x.device) if D.rank() == 0 else None
    if perm is None:
        perm = torch.empty(x_all.shape[0], dtype=torch.long, device=x.device)
    D.broadcast_(perm, 0)
    start = sum(sizes[: D.rank()])
    mine = perm[start : start + sizes[D.rank()]]
    keys_shuffled = D.all_gather_nograd(encode(x_all[mine]), sizes)
    keys_all = torch.empty_like(keys_shuffled)
    keys_all[perm] = keys_shuffled  # row perm[j] of the global batch was encoded as row j
    return keys_all[start : start + sizes[D.rank()]], keys_all
