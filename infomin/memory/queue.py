"""MoCo's queue of negative keys: a FIFO ring buffer of L2-normalised embeddings.

Both the keys and the write pointer are buffers, so they are saved in the state_dict and a resumed
run continues exactly where it stopped (PyContrast kept the pointer in a Python int and restarted
it at 0). Every rank enqueues the same globally gathered keys, so the queues stay identical.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Queue(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be positive, got size={size}, dim={dim}")
        self.register_buffer("queue", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.queue.shape[0]

    def negatives(self) -> torch.Tensor:
        """A detached snapshot [K, dim] of the queue, safe to use in a loss before `enqueue`."""
        return self.queue.detach().clone()

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write the global batch of keys [N, dim] after the newest entry, wrapping around.

        Pass the keys of ALL ranks (every rank must make the same update). When N exceeds the
        queue size only the last K keys are kept.
        """
        if keys.dim() != 2 or keys.shape[1] != self.queue.shape[1]:
            raise ValueError(
                f"keys must have shape [N, {self.queue.shape[1]}], got {tuple(keys.shape)}"
            )
        n, size = keys.shape[0], self.size
        start = self.ptr  # a device tensor: no host sync per step
        if n > size:
            start = (start + n - size) % size
            keys, n = keys[-size:], size
        index = (start + torch.arange(n, device=self.queue.device)) % size
        self.queue.index_copy_(0, index, keys.detach().to(self.queue.dtype))
        self.ptr.copy_((start + n) % size)
