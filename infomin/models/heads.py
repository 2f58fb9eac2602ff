"""Projection heads (PyContrast's `linear` and `mlp`) and the PIRL/InfoMin jigsaw head.

Key layouts follow the reference so released checkpoints map one-to-one:
linear = `0.{weight,bias}`; mlp = `0.*` and `2.*`; jigsaw = `fc1.*` (or `fc1.0.*`, `fc1.2.*`), `fc2.*`.
No BatchNorm in any head (as in the reference).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

HEADS = ("linear", "mlp")


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows onto the unit sphere, in float32 even under autocast: the embeddings feed the float32
    contrastive logits and the memories, so they are not rounded to bf16/fp16 first."""
    with torch.autocast(x.device.type, enabled=False):
        return F.normalize(x.float(), dim=1)


class L2Norm(nn.Module):
    """Project each row onto the unit sphere (contrastive logits are cosine similarities)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_normalize(x)


def _projection(kind: str, in_dim: int, out_dim: int) -> list[nn.Module]:
    if kind == "linear":
        return [nn.Linear(in_dim, out_dim)]
    if kind == "mlp":
        return [nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim)]
    raise ValueError(f"unknown head {kind!r}; choose one of: {', '.join(HEADS)}")


def build_head(kind: str, in_dim: int, feat_dim: int = 128) -> nn.Sequential:
    """`linear`: Linear(D, d) + L2; `mlp`: Linear(D, D), ReLU, Linear(D, d) + L2."""
    return nn.Sequential(*_projection(kind, in_dim, feat_dim), L2Norm())


class JigsawHead(nn.Module):
    """Embeds the 9 tiles of an image into one normalised vector (PIRL's head, k=9).

    Each tile's pooled feature goes through `fc1` (linear or mlp, no normalisation); the tile
    embeddings are shuffled by a fresh random permutation per image (so the head cannot rely on
    tile position), concatenated and projected by `fc2`, then L2-normalised. The permutation uses
    torch's RNG on the feature's device, so a seeded run is reproducible.
    """

    def __init__(self, kind: str, in_dim: int, feat_dim: int = 128, tiles: int = 9):
        super().__init__()
        layers = _projection(kind, in_dim, feat_dim)
        self.fc1 = layers[0] if len(layers) == 1 else nn.Sequential(*layers)
        self.fc2 = nn.Linear(tiles * feat_dim, feat_dim)
        self.tiles = tiles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x`: tile features [B*tiles, D], grouped image by image -> [B, feat_dim]."""
        if x.dim() != 2 or x.shape[0] % self.tiles:
            raise ValueError(
                f"JigsawHead expects features of shape [B*{self.tiles}, D], got {tuple(x.shape)}"
            )
        z = self.fc1(x).view(-1, self.tiles, self.fc2.in_features // self.tiles)
        order = torch.argsort(torch.rand(z.shape[0], self.tiles, device=z.device), dim=1)
        z = torch.gather(z, 1, order.unsqueeze(-1).expand_as(z))
        return l2_normalize(self.fc2(z.flatten(1)))
