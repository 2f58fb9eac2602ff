"""The PIRL jigsaw view (drawn from the original image, independently of the two views):
RandomResizedCrop(crop_size, spec.scale) -> flip -> 3x3 tiles at random offsets -> colour space and
normalisation per tile. It is a view of its own, switched on by ``jigsaw=``, not a policy stage."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from ..colorspace import to_normalized_tensor
from ..jigsaw import JigsawSpec, cut_tiles, sample_offsets, tile_origins
from .base import STAGES, ViewContext
from .crop import resized_crop, sample_box
from .flip import flip, sample_flip
from .normalize import uint8_chw

__all__ = ["JigsawParams", "JigsawView", "ReferenceJigsaw"]


@dataclass
class JigsawParams:
    box: tuple[int, int, int, int]
    flip: bool
    offsets: torch.Tensor


class JigsawView:
    """Sampling and both backends' rendering of the jigsaw view (``reference()``: the oracle)."""

    def __init__(self, spec: JigsawSpec, context: ViewContext):
        self.spec = spec
        self.context = context

    def sample(self, img: Image.Image) -> JigsawParams:
        s = self.spec
        box = sample_box(img, s.scale, (3.0 / 4.0, 4.0 / 3.0))
        return JigsawParams(box, sample_flip(s.flip_prob), sample_offsets(s))

    def _crop(self, img, params: JigsawParams, scale: int) -> Image.Image:
        return flip(resized_crop(img, params.box, self.spec.crop_size, scale), params.flip)

    def render_pil(self, img: Image.Image, params: JigsawParams, scale: int = 1) -> torch.Tensor:
        tiles = cut_tiles(uint8_chw(self._crop(img, params, scale)), params.offsets, self.spec)
        return to_normalized_tensor(tiles, self.context.color_space)

    def render_cv2(self, img: Image.Image, params: JigsawParams, scale: int = 1) -> torch.Tensor:
        """Tiles are cut from the PIL crop (no colour op touches them); RGB normalises with cvops'
        lookup table, bit-identical to the PIL backend."""
        if self.context.color_space != "RGB":
            return self.render_pil(img, params, scale)
        from .. import cvops

        arr, t = np.asarray(self._crop(img, params, scale)), self.spec.tile
        tiles = np.stack([arr[top:top + t, left:left + t] for top, left in tile_origins(params.offsets, self.spec)])
        return cvops.to_normalized_rgb(tiles)

    def render_batch(self, images, params: list) -> torch.Tensor:
        """Decoded [3, H, W] images (any device) -> [N, tiles, C, tile, tile], normalised."""
        from .. import batchops

        crops = batchops.flip(batchops.resized_crops(images, [p.box for p in params], self.spec.crop_size),
                              [p.flip for p in params])
        origins = torch.tensor([tile_origins(p.offsets, self.spec) for p in params], dtype=torch.long)
        tiles = batchops.cut_tiles(batchops.to_uint8(crops), origins, self.spec.tile)
        return to_normalized_tensor(tiles, self.context.color_space)

    def reference(self) -> "ReferenceJigsaw":
        return ReferenceJigsaw(self.spec, self.context.color_space)


class ReferenceJigsaw:
    """RRC(255, 0.6-1) -> flip -> 9 tiles, each colour-converted, ToTensor'd and normalised."""

    def __init__(self, spec: JigsawSpec = JigsawSpec(), color_space: str = "RGB"):
        self.spec = spec
        self.crop = T.Compose([T.RandomResizedCrop(spec.crop_size, scale=spec.scale),
                               T.RandomHorizontalFlip(spec.flip_prob)])
        self.tail = T.Compose(STAGES.get("normalize").reference(None, ViewContext(color_space)))

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = self.crop(img)
        t = self.spec.tile
        tiles = [self.tail(img.crop((left, top, left + t, top + t)))
                 for top, left in tile_origins(sample_offsets(self.spec), self.spec)]
        return torch.stack(tiles)
