"""RandAugment as the reference configures it, built with timm.

The reference (PyContrast ``datasets/RandAugment.py``) is a copy of timm's RandAugment: config
``rand-n2-m10-mstd0.5`` = 2 ops drawn uniformly with replacement, each firing with probability 0.5,
magnitude ~ N(10, 0.5) clipped to [0, 10], fill colour = the ImageNet mean in 0-255, bilinear or
bicubic resampling at random. timm's ``_RAND_TRANSFORMS`` is the reference's RGB list (timm's
"Posterize" is the reference's "PosterizeTpu": bits = int(4 m / 10)); we still pass the list
explicitly so a timm default change cannot alter our policy. The CMC list contains "Identity",
which timm does not define; it is added here as an op that draws the same random numbers and returns
the image unchanged.
"""
from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageOps
from timm.data.auto_augment import AugmentOp, RandAugment, rand_augment_transform

__all__ = ["RGB_OPS", "CMC_OPS", "reference_hparams", "build_randaugment", "op_names"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)

RGB_OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)
# No colour ops: the reference uses this list when the views are colour channels (CMC).
CMC_OPS = ("AutoContrast", "Identity", "Rotate", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
_OP_LISTS = {"rgb": RGB_OPS, "cmc": CMC_OPS}


def reference_hparams(image_size: int = 224) -> dict:
    """translate_const = int(0.45 * size) (unused by the Rel ops), fill = round(255 * ImageNet mean)."""
    return {
        "translate_const": int(0.45 * image_size),
        "img_mean": tuple(int(round(255 * m)) for m in IMAGENET_MEAN),
    }


class _IdentityOp(AugmentOp):
    """The reference's "Identity": same probability/magnitude draws as any op, image unchanged."""

    def __init__(self, prob, magnitude, hparams):
        super().__init__("AutoContrast", prob=prob, magnitude=magnitude, hparams=hparams)
        self.name = "Identity"
        self.level_fn = None
        self.aug_fn = _identity


def _identity(img, *args, **kwargs):
    return img


def _posterize(img, bits_to_keep, **__):
    """timm's posterize, with 0 bits kept meaning an all-zero image, as the reference's Pillow did.

    "Posterize" keeps int(4 m / 10) bits, so magnitudes below 2.5 ask for 0 bits; Pillow >= 10
    refuses that (ValueError) where the Pillow of the reference masked every bit away.
    """
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


def build_randaugment(config: str = "rand-n2-m10-mstd0.5", ops: str | Sequence[str] = "rgb",
                      image_size: int = 224) -> RandAugment:
    """timm RandAugment for ``config`` over the reference op list ``ops`` ("rgb", "cmc" or names)."""
    names = _OP_LISTS.get(ops) if isinstance(ops, str) else tuple(ops)
    if names is None:
        raise ValueError(f"unknown RandAugment op list {ops!r}; use 'rgb', 'cmc' or a list of op names")
    if not config.startswith("rand-"):
        raise ValueError(f"RandAugment config {config!r} must look like 'rand-n2-m10-mstd0.5'")
    timm_names = [n for n in names if n != "Identity"]
    if not timm_names:
        raise ValueError("a RandAugment op list needs at least one op besides 'Identity'")
    ra = rand_augment_transform(config, hparams=reference_hparams(image_size), transforms=timm_names)
    by_name = iter(ra.ops)
    template = ra.ops[0]
    ops_out = [_IdentityOp(template.prob, template.magnitude, template.hparams) if n == "Identity" else next(by_name)
               for n in names]
    for op in ops_out:
        if op.name == "Posterize":
            op.aug_fn = _posterize
    return RandAugment(ops_out, ra.num_layers, choice_weights=ra.choice_weights)


def op_names(ra: RandAugment) -> tuple[str, ...]:
    return tuple(op.name for op in ra.ops)
