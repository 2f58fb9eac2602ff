"""Colour-space conversions against scikit-image, and the per-space normalisation constants."""
import numpy as np
import pytest
import skimage.color as skc
import torch
from PIL import Image

from _views_helpers import photo
from infomin.views import colorspace as cs

SKIMAGE = {
    "Lab": skc.rgb2lab, "LUV": skc.rgb2luv, "XYZ": skc.rgb2xyz, "CIERGB": skc.rgb2rgbcie, "YCbCr": skc.rgb2ycbcr,
    "YDbDr": skc.rgb2ydbdr, "YPbPr": skc.rgb2ypbpr, "YIQ": skc.rgb2yiq, "YUV": skc.rgb2yuv, "HSV": skc.rgb2hsv,
    "HED": skc.rgb2hed,
}


def _test_image() -> np.ndarray:
    """A photo plus the 8 corners of the RGB cube and greys (edge cases: black, ties, zero chroma)."""
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)]
                       + [[128, 128, 128], [1, 1, 1], [255, 254, 254], [0, 0, 1]], dtype=np.uint8)
    img = photo(24, 20).reshape(-1, 3)
    return np.concatenate([img, corners]).reshape(-1, 4, 3)


def test_every_space_is_covered():
    assert set(cs.SPACES) == set(SKIMAGE) | {"RGB"} and set(cs.NORMALIZATION) == set(cs.SPACES)


@pytest.mark.parametrize("space", sorted(SKIMAGE))
def test_conversion_equals_scikit_image(space):
    arr = _test_image()
    expected = SKIMAGE[space](arr)
    x = torch.from_numpy(arr).permute(2, 0, 1)
    out64 = cs.convert(x.double() / 255, space).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out64, expected, rtol=1e-9, atol=1e-9)
    out32 = cs.convert(x, space).permute(1, 2, 0).numpy()  # uint8 in -> float32 out
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(out32, expected, rtol=0, atol=2e-6 * scale)


def test_inputs_pil_array_and_batch_agree():
    arr = photo(16, 12)
    a = cs.convert(Image.fromarray(arr), "lab")  # names are case-insensitive
    b = cs.convert(arr, "Lab")
    batch = cs.convert(torch.from_numpy(arr).permute(2, 0, 1).repeat(2, 1, 1, 1), "Lab")
    assert torch.equal(a, b) and batch.shape == (2, 3, 12, 16) and torch.allclose(batch[1], a)


def test_normalisation_constants():
    assert cs.NORMALIZATION["RGB"] == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert cs.NORMALIZATION["YDbDr"] == ((0.457, -0.082, -0.052), (0.500, 1.331, 1.333))  # PyContrast's CMC values
    # Every space except RGB / YDbDr / YCbCr maps its range over the sRGB cube to [-1, 1] (CMC's Lab rule)
    levels = np.linspace(0, 1, 33)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 1, 3)
    for space, fn in SKIMAGE.items():
        if space in ("YDbDr", "YCbCr"):
            continue
        out = fn(cube).reshape(-1, 3)
        lo, hi = out.min(0), out.max(0)
        mean, std = cs.NORMALIZATION[space]
        np.testing.assert_allclose(mean, (hi + lo) / 2, atol=0.01 * (hi - lo).max(), err_msg=space)
        np.testing.assert_allclose(std, (hi - lo) / 2, rtol=0.01, err_msg=space)


def test_to_normalized_tensor_is_convert_then_normalise():
    arr = photo(20, 10)
    mean, std = cs.NORMALIZATION["YDbDr"]
    expected = (torch.from_numpy(skc.rgb2ydbdr(arr)).permute(2, 0, 1) - torch.tensor(mean).view(3, 1, 1)) \
        / torch.tensor(std).view(3, 1, 1)
    out = cs.to_normalized_tensor(torch.from_numpy(arr).permute(2, 0, 1), "YDbDr")
    assert out.dtype == torch.float32 and torch.allclose(out.double(), expected, atol=1e-5)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="unknown colour space 'ycc'"):
        cs.convert(torch.zeros(3, 2, 2), "ycc")
    with pytest.raises(ValueError, match=r"\[..., 3, H, W\]"):
        cs.convert(torch.zeros(4, 2, 2), "Lab")
    with pytest.raises(TypeError, match="uint8 or float"):
        cs.convert(torch.zeros(3, 2, 2, dtype=torch.int32), "Lab")
    with pytest.raises(TypeError, match="PIL image"):
        cs.convert([[1, 2, 3]], "Lab")
