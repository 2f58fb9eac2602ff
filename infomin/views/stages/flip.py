"""Horizontal flip, right after the crop in every view."""
from __future__ import annotations

import torch
import torchvision.transforms as T
from PIL import Image

from .base import STAGES, Stage, check_probability

__all__ = ["HorizontalFlip", "sample_flip", "flip"]


def sample_flip(p: float) -> bool:
    """RandomHorizontalFlip's draw (one torch number, always drawn)."""
    return bool(torch.rand(1) < p)


def flip(img: Image.Image, flipped: bool) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flipped else img


@STAGES.register
class HorizontalFlip(Stage):
    name = "flip"
    in_policy = False

    @classmethod
    def validate(cls, policy) -> None:
        check_probability(policy, "flip_prob")

    def sample(self, img: Image.Image) -> bool:
        return sample_flip(self.policy.flip_prob)

    def render_pil(self, img: Image.Image, flipped: bool) -> Image.Image:
        return flip(img, flipped)

    def render_batch(self, x: torch.Tensor, flips) -> torch.Tensor:
        from ..batchops import flip as flip_batch

        return flip_batch(x, flips)

    @classmethod
    def reference(cls, policy, context) -> list:
        return [T.RandomHorizontalFlip(policy.flip_prob)]

