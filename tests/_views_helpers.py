"""Small shared fixtures for the view tests (no conftest: each test file imports what it needs)."""
from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image


def seed_all(seed: int) -> None:
    """Seed the three RNGs the view pipelines draw from (torch, Python random, NumPy)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def photo(width: int = 160, height: int = 120) -> np.ndarray:
    """A real photo (scikit-image's astronaut) resized to width x height, uint8 HxWx3."""
    import skimage.data

    return np.array(Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.Resampling.BILINEAR))


def jpeg_bytes(width: int = 160, height: int = 120, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo(width, height)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def open_jpeg(data: bytes) -> Image.Image:
    """A lazily opened JPEG, as a dataset would hand it to the transform."""
    return Image.open(io.BytesIO(data))
