"""The PIRL jigsaw view of the reference: 3x3 tiles of 64 px cut from a 255 px crop.

Reference (PyContrast ``datasets/util.py``: ``jigsaw_transform``, ``JigsawCrop``): from the original
image, RandomResizedCrop(255, scale=(0.6, 1)) and a horizontal flip; the crop is divided into a 3x3
grid of int(255 / 3) = 85 px cells and each tile of 64 px sits at its own random offset in [0, 21]
(row and column, inclusive) inside its cell; tiles are row-major and each is colour-converted and
normalised. No colour augmentation touches the tiles. Offsets are drawn from torch's RNG.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["JigsawSpec", "sample_offsets", "tile_origins", "cut_tiles"]


@dataclass(frozen=True)
class JigsawSpec:
    crop_size: int = 255
    scale: tuple[float, float] = (0.6, 1.0)
    grid: int = 3
    tile: int = 64
    flip_prob: float = 0.5

    @property
    def cell(self) -> int:
        return self.crop_size // self.grid

    @property
    def max_offset(self) -> int:
        """Largest offset of a tile inside its cell (inclusive): 85 - 64 = 21 for the reference."""
        return self.cell - self.tile

    def __post_init__(self):
        if self.tile > self.crop_size // self.grid:
            raise ValueError(f"jigsaw tile {self.tile} px does not fit a {self.crop_size // self.grid} px grid cell")


def sample_offsets(spec: JigsawSpec = JigsawSpec()) -> torch.Tensor:
    """[grid*grid, 2] (row, col) offsets, each uniform in [0, max_offset]."""
    return torch.randint(0, spec.max_offset + 1, (spec.grid * spec.grid, 2))


def tile_origins(offsets: torch.Tensor, spec: JigsawSpec = JigsawSpec()) -> list[tuple[int, int]]:
    """(top, left) of each tile in row-major order."""
    out = []
    for i, (dr, dc) in enumerate(offsets.tolist()):
        r, c = divmod(i, spec.grid)
        out.append((r * spec.cell + dr, c * spec.cell + dc))
    return out


def cut_tiles(image: torch.Tensor, offsets: torch.Tensor, spec: JigsawSpec = JigsawSpec()) -> torch.Tensor:
    """Cut [N, C, tile, tile] tiles from a [C, crop, crop] tensor (any dtype)."""
    t = spec.tile
    return torch.stack([image[:, top:top + t, left:left + t] for top, left in tile_origins(offsets, spec)])
