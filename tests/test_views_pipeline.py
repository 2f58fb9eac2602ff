"""The fast multi-view pipeline against the reference-style torchvision/PIL pipeline.

Oracle: ``build_reference_transform`` composes stock torchvision transforms, timm's RandAugment, the
reference's conv blur and scikit-image colour conversion on a fully decoded image, in PyContrast's
order. Given the same seeds, the fast path with ``backend="pil"`` must produce the same views (the
OpenCV backend's closeness is tested in test_views_cv2.py).
"""
import io
import pickle

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from _views_helpers import jpeg_bytes, open_jpeg, photo, seed_all
from infomin.views import (JigsawSpec, build_eval_transform, build_linear_train_transform, build_multiview_transform,
                           build_randaugment, build_reference_transform)
from infomin.views.colorspace import NORMALIZATION

ONE_LEVEL = 1 / 255 / 0.224 + 1e-5  # one uint8 level after RGB normalisation (largest 1/std among channels)


SMALL_JIGSAW = JigsawSpec(crop_size=96, tile=24)  # same geometry rules, smaller, to keep the test fast


def _pair(policy, color_space, seed, data):
    kw = dict(image_size=96, jigsaw=SMALL_JIGSAW, color_space=color_space)
    fast = build_multiview_transform(policy, fast_decode=False, backend="pil", **kw)
    ref = build_reference_transform(policy, **kw)
    seed_all(seed)
    a = fast(open_jpeg(data))
    seed_all(seed)
    b = ref(open_jpeg(data))
    return a, b


@pytest.mark.parametrize("policy, color_space", [("A", "RGB"), ("B", "RGB"), ("C", "YDbDr"), ("D", "RGB"),
                                                 ("D", "Lab"), ("E", "YDbDr")])
def test_fast_path_equals_reference_given_the_same_seeds(policy, color_space):
    data = jpeg_bytes(150, 110)
    for seed in range(3):
        a, b = _pair(policy, color_space, seed, data)
        assert set(a) == set(b) == {"view1", "view2", "jigsaw"}
        assert a["jigsaw"].shape == (9, 3, 24, 24) and torch.allclose(a["jigsaw"], b["jigsaw"], atol=1e-4)
        for key in ("view1", "view2"):
            assert a[key].shape == b[key].shape == (3, 96, 96) and a[key].dtype == torch.float32
            diff = (a[key] - b[key]).abs()
            tol = 1e-4 * max(1.0, float(b[key].abs().max()))
            if policy in "DE":  # conv blur: float32 summation order may move a rare pixel by one level
                assert diff.max() <= (ONE_LEVEL if color_space == "RGB" else 0.05)
                assert (diff > tol).float().mean() < 2e-3
            else:
                assert diff.max() <= tol, (policy, key)


def test_two_views_are_independent_and_seeded_runs_repeat():
    t = build_multiview_transform("D", image_size=64)
    img = Image.new("RGB", (400, 300))
    seed_all(0)
    pairs = [(t.sample_view(img), t.sample_view(img)) for _ in range(600)]
    area = np.array([[v.box[2] * v.box[3] / (400 * 300) for v in p] for p in pairs])
    assert area.min() >= 0.2 - 1e-9 and area.max() <= 1.0
    assert abs(np.corrcoef(area[:, 0], area[:, 1])[0, 1]) < 0.12
    assert sum(p[0].box == p[1].box for p in pairs) == 0
    data = jpeg_bytes(120, 90)
    seed_all(5)
    first = t(open_jpeg(data))
    seed_all(5)
    again = t(open_jpeg(data))
    assert torch.equal(first["view1"], again["view1"]) and torch.equal(first["view2"], again["view2"])
    assert not torch.equal(first["view1"], first["view2"])


def test_sampled_parameters_follow_policy_d():
    t = build_multiview_transform("D")
    img = Image.new("RGB", (500, 375))
    seed_all(0)
    views = [t.sample_view(img) for _ in range(3000)]
    n = len(views)
    assert abs(sum(v.flip for v in views) / n - 0.5) < 0.04
    assert abs(sum(v.jitter is not None for v in views) / n - 0.8) < 0.03
    assert abs(sum(v.blur_sigma is not None for v in views) / n - 0.5) < 0.04
    assert abs(sum(v.grayscale for v in views) / n - 0.2) < 0.03
    jit = [v.jitter for v in views if v.jitter is not None]
    factors = np.array([j[1:4] for j in jit])
    hue = np.array([j[4] for j in jit])
    assert factors.min() >= 0.2 and factors.max() <= 1.8 and hue.min() >= -0.2 and hue.max() <= 0.2
    assert sorted(jit[0][0].tolist()) == [0, 1, 2, 3]  # the four ops in a random order
    ratios = np.array([v.box[3] / v.box[2] for v in views])
    assert ratios.min() >= 3 / 4 - 0.02 and ratios.max() <= 4 / 3 + 0.02
    sigmas = np.array([v.blur_sigma for v in views if v.blur_sigma is not None])
    assert sigmas.min() >= 0.1 and sigmas.max() <= 2.0


def test_reduced_jpeg_decode_is_close_and_only_used_when_crops_shrink():
    big = jpeg_bytes(500, 400)
    kw = dict(crop_min=0.9, image_size=64, jigsaw=SMALL_JIGSAW)
    full, fast = (build_multiview_transform("C", fast_decode=f, **kw) for f in (False, True))
    for seed in range(2):
        seed_all(seed)
        a = full(open_jpeg(big))
        seed_all(seed)
        b = fast(open_jpeg(big))
        levels = (a["view1"] - b["view1"]).abs() * 255 * 0.225
        assert 0 < levels.mean() < 1.5  # a different (DCT-domain) downscale, same crop
        assert (a["jigsaw"] - b["jigsaw"]).abs().mean() * 255 * 0.225 < 2.0
    small = jpeg_bytes(300, 200)  # every crop would be upsampled: no reduced decode
    seed_all(3)
    a = full(open_jpeg(small))
    seed_all(3)
    b = fast(open_jpeg(small))
    assert torch.equal(a["view1"], b["view1"]) and torch.equal(a["jigsaw"], b["jigsaw"])


def test_paths_loaded_images_and_one_view(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg_bytes(100, 80))
    t = build_multiview_transform("A", image_size=32, views=1, fast_decode=False)
    seed_all(0)
    from_path = t(str(path))
    seed_all(0)
    from_pil = t(Image.open(path).convert("RGB"))
    assert set(from_path) == {"view1"} and torch.equal(from_path["view1"], from_pil["view1"])
    gray = Image.fromarray(photo(50, 40)[..., 0])  # 'L' images become RGB
    assert build_multiview_transform("D", image_size=32, jigsaw=True)(gray)["jigsaw"].shape == (9, 3, 64, 64)


def test_transforms_survive_pickling_for_dataloader_workers():
    data = jpeg_bytes(120, 90)
    for t in (build_multiview_transform("E", image_size=48, jigsaw=True, color_space="YDbDr"),
              build_linear_train_transform(randaugment=True, image_size=48), build_eval_transform(48, 56)):
        clone = pickle.loads(pickle.dumps(t))
        seed_all(2)
        a = t(open_jpeg(data))
        seed_all(2)
        b = clone(open_jpeg(data))
        assert all(torch.equal(a[k], b[k]) for k in a) if isinstance(a, dict) else torch.equal(a, b)


def test_eval_transform_equals_torchvision():
    img = Image.fromarray(photo(300, 200))
    mean, std = NORMALIZATION["RGB"]
    ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(mean, std)])
    assert torch.equal(build_eval_transform()(img), ref(img))
    assert build_eval_transform(color_space="YDbDr")(img).shape == (3, 224, 224)


def test_linear_train_transform_equals_torchvision_with_randaugment():
    data = jpeg_bytes(200, 150)
    mean, std = NORMALIZATION["RGB"]
    ref = T.Compose([T.RandomResizedCrop(224, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
                     build_randaugment("rand-n2-m10-mstd0.5", "rgb"), T.ToTensor(), T.Normalize(mean, std)])
    ours = build_linear_train_transform(randaugment=True)
    for seed in range(3):
        seed_all(seed)
        a = ours(open_jpeg(data))
        seed_all(seed)
        b = ref(open_jpeg(data).convert("RGB"))
        assert torch.equal(a, b)


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="unknown view policy"):
        build_multiview_transform("Z")
    with pytest.raises(ValueError, match="unknown colour space"):
        build_multiview_transform("D", color_space="RGBA")
    with pytest.raises(ValueError, match="1 or 2 views"):
        build_multiview_transform("D", views=3)
    with pytest.raises(ValueError, match="unknown view override"):
        build_multiview_transform("D", blurr=0.3)
    with pytest.raises(TypeError, match="PIL image or a path"):
        build_multiview_transform("D")(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="too small"):
        build_multiview_transform("D", image_size=10)
    with pytest.raises(ValueError, match="resize"):
        build_eval_transform(image_size=224, resize=200)
    with pytest.raises(OSError):
        truncated = jpeg_bytes(200, 150)[:600]
        build_multiview_transform("A")(Image.open(io.BytesIO(truncated)))
