"""CMC's two-stream encoder: one ResNet on the luminance channel, one on the two chroma channels.

Input is a 3-channel image already converted by the views (Lab or YDbDr: channel 0 = L/Y,
channels 1-2 = ab/DbDr). Each stream is a torchvision ResNet at half the requested width
(PyContrast's CMC R-50 is two width-0.5 ResNet-50s, 1024-d each), so the concatenated feature has
the size of one full-width encoder. Submodules `l` and `ab` give the keys `encoder.l.*` and
`encoder.ab.*` that the checkpoint converter recognises (and refuses, since Detectron2 has no
two-stream backbone).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from infomin.models.encoders import build_encoder, feature_dim
from infomin.models.heads import JigsawHead, build_head


class TwoStreamEncoder(nn.Module):
    def __init__(self, arch: str = "resnet50", width: float = 1):
        super().__init__()
        self.l = build_encoder(arch, width / 2, in_channels=1)
        self.ab = build_encoder(arch, width / 2, in_channels=2)
        self.stream_dim = feature_dim(arch, width / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, 2 * stream_dim]: L/Y features then ab/DbDr features."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"TwoStreamEncoder expects [B, 3, H, W] images in Lab/YDbDr, got {tuple(x.shape)}"
            )
        return torch.cat([self.l(x[:, :1]), self.ab(x[:, 1:])], dim=1)


class TwoStreamHead(nn.Module):
    """One projection head per stream; returns the two embeddings concatenated [B, 2*feat_dim]."""

    def __init__(self, kind: str, stream_dim: int, feat_dim: int = 128, jigsaw: bool = False):
        super().__init__()
        make = (lambda: JigsawHead(kind, stream_dim, feat_dim)) if jigsaw else (
            lambda: build_head(kind, stream_dim, feat_dim)
        )
        self.l = make()
        self.ab = make()
        self.stream_dim = stream_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        f_l, f_ab = features.split(self.stream_dim, dim=1)
        return torch.cat([self.l(f_l), self.ab(f_ab)], dim=1)
