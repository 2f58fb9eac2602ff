"""Memory bank of InsDis / PIRL / CMC: one L2-normalised embedding per training image.

The positive of an image is its own bank entry; negatives are `num_negatives` entries drawn
uniformly with replacement (the reference's alias sampler over equal weights is uniform; like the
reference, a draw may hit the image itself). Entries are updated by momentum with the features of
the whole global batch after the loss is computed.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class MemoryBank(nn.Module):
    def __init__(self, size: int, dim: int, momentum: float = 0.5):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(
                f"memory bank needs a positive dataset size and dim, got size={size}, dim={dim}"
            )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"memory-bank momentum must lie in [0, 1), got {momentum}")
        self.momentum = momentum
        self.register_buffer("bank", F.normalize(torch.randn(size, dim), dim=1))

    @property
    def size(self) -> int:
        return self.bank.shape[0]

    def _check_index(self, index: torch.Tensor) -> None:
        if index.dtype not in (torch.int64, torch.int32) or index.dim() != 1:
            raise ValueError(f"index must be a 1-D integer tensor, got {index.dtype} {tuple(index.shape)}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.size):
            raise ValueError(
                f"dataset index out of range [0, {self.size}): got {int(index.min())}..{int(index.max())}; "
                "is dataset_size the length of the training set?"
            )

    @torch.no_grad()
    def sample(self, index: torch.Tensor, num_negatives: int) -> torch.Tensor:
        """Rows [B, 1 + num_negatives, dim]: column 0 is each image's own entry, then random ones."""
        self._check_index(index)
        draw = torch.randint(self.size, (index.shape[0], num_negatives + 1), device=self.bank.device)
        draw[:, 0] = index.to(self.bank.device)
        return self.bank[draw]

    @torch.no_grad()
    def update(self, features: torch.Tensor, index: torch.Tensor) -> None:
        """bank[i] <- normalize(m * bank[i] + (1 - m) * f) for the global batch (features [N, dim])."""
        self._check_index(index)
        index = index.to(self.bank.device)
        mixed = self.bank[index] * self.momentum + features.detach().to(self.bank.dtype) * (1 - self.momentum)
        self.bank.index_copy_(0, index, F.normalize(mixed, dim=1))
