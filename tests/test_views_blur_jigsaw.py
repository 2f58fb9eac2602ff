"""Blur (reference GaussianBlur(22) and its fast twin) and the jigsaw view's geometry."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter

from _views_helpers import photo, seed_all
from infomin.views import GaussianBlur, JigsawSpec, PILGaussianBlur, blur_uint8
from infomin.views.blur import gaussian_kernel1d, sample_sigma
from infomin.views.jigsaw import cut_tiles, sample_offsets, tile_origins


def test_kernel_is_23_taps_normalised_gaussian():
    k = gaussian_kernel1d(1.3, 11)
    x = torch.arange(-11, 12, dtype=torch.float32)
    assert k.numel() == 23 and k.sum().item() == pytest.approx(1.0, abs=1e-6)
    expected = torch.exp(-x ** 2 / (2 * 1.3 ** 2))
    assert torch.allclose(k, expected / expected.sum())
    assert GaussianBlur(22).radius == 11  # GaussianBlur(22) -> 23 x 23


def test_sigma_is_uniform_between_01_and_2():
    torch.manual_seed(0)
    s = np.array([sample_sigma((0.1, 2.0)) for _ in range(4000)])
    assert s.min() >= 0.1 and s.max() <= 2.0
    assert abs(s.mean() - 1.05) < 0.03 and abs(s.std() - 1.9 / np.sqrt(12)) < 0.03


def _oracle_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """2-D convolution with the outer-product kernel (reflect padding), in float64, truncated."""
    k = gaussian_kernel1d(sigma, 11).double()
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).double().div(255).unsqueeze(1)
    x = F.conv2d(F.pad(x, (11,) * 4, mode="reflect"), torch.outer(k, k).view(1, 1, 23, 23))
    return x.squeeze(1).permute(1, 2, 0).mul(255).numpy()


@pytest.mark.parametrize("sigma", [0.1, 0.6, 1.37, 2.0])
@pytest.mark.parametrize("size", [(96, 80), (61, 45)])
def test_reference_and_fast_blur_equal_the_2d_gaussian(sigma, size):
    arr = photo(*size)
    exact = _oracle_blur(arr, sigma)
    ref = np.asarray(GaussianBlur(22)(Image.fromarray(arr), sigma)).astype(np.int64)
    fast = blur_uint8(arr, sigma).numpy().astype(np.int64)
    # both truncate x*255; float32 sums may land one level apart only where x*255 is ~an integer
    for out in (ref, fast):
        assert np.all((out >= np.floor(exact - 1e-3)) & (out <= np.floor(exact + 1e-3)))
    assert (ref != fast).mean() < 1e-3


def test_pil_blur_is_pil_gaussian_with_sigma_radius():
    img = Image.fromarray(photo(64, 48))
    assert np.array_equal(np.asarray(PILGaussianBlur()(img, 1.2)), np.asarray(img.filter(ImageFilter.GaussianBlur(1.2))))


def test_jigsaw_geometry_is_the_references():
    spec = JigsawSpec()
    assert (spec.crop_size, spec.scale, spec.grid, spec.tile) == (255, (0.6, 1.0), 3, 64)
    assert spec.cell == 85 and spec.max_offset == 21
    torch.manual_seed(0)
    offsets = torch.cat([sample_offsets(spec) for _ in range(400)])
    assert offsets.shape == (3600, 2) and offsets.min() == 0 and offsets.max() == 21
    assert set(offsets.flatten().tolist()) == set(range(22))  # inclusive of both ends, every value
    zero = torch.zeros(9, 2, dtype=torch.long)
    assert tile_origins(zero, spec) == [(r * 85, c * 85) for r in range(3) for c in range(3)]  # row-major
    assert tile_origins(torch.full((9, 2), 21), spec)[-1] == (191, 191)  # last tile ends at 255 - 0


def test_cut_tiles_equals_pil_crops_of_the_same_boxes():
    spec = JigsawSpec()
    crop = Image.fromarray(photo(255, 255))
    seed_all(1)
    offsets = sample_offsets(spec)
    tiles = cut_tiles(torch.from_numpy(np.array(crop)).permute(2, 0, 1), offsets, spec)
    assert tiles.shape == (9, 3, 64, 64)
    for tile, (top, left) in zip(tiles, tile_origins(offsets, spec)):
        expected = TF.pil_to_tensor(crop.crop((left, top, left + 64, top + 64)))
        assert torch.equal(tile, expected)


def test_jigsaw_spec_refuses_tiles_larger_than_cells():
    with pytest.raises(ValueError, match="does not fit"):
        JigsawSpec(crop_size=96, tile=40)
