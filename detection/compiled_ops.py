"""Which config features need Detectron2's compiled extension ``detectron2._C``.

The Detectron2 that ``tools/install_detectron2.py`` installs is pure Python: Faster/Mask R-CNN with
ResNet C4/FPN runs without ``_C`` (RoIAlign and NMS come from torchvision), but deformable
convolution and rotated boxes do not. Checking the config up front turns a late ImportError deep
inside model code into one message naming the key and the way out.
"""
__all__ = ["CompiledOpsRequired", "has_compiled_ops", "compiled_ops_needed", "check_compiled_ops"]

SOURCE_BUILD_HINT = (
    "build Detectron2 with its C++/CUDA extension from source "
    "(python -m pip install 'git+https://github.com/facebookresearch/detectron2.git'; needs a C++ "
    "compiler and, for the CUDA ops, nvcc), then rerun: an importable Detectron2 is kept as is"
)


class CompiledOpsRequired(ValueError):
    """The config needs ``detectron2._C`` and this Detectron2 was installed without it."""


def has_compiled_ops() -> bool:
    """True when ``detectron2._C`` was built and imports (works for any Detectron2 build)."""
    try:
        from detectron2 import _C  # noqa: F401
    except ImportError:
        return False
    return True


def _get(cfg, dotted, default=None):
    node = cfg
    for part in dotted.split("."):
        if not hasattr(node, part):
            return default
        node = getattr(node, part)
    return node


def compiled_ops_needed(cfg):
    """List of (config key, value, feature) for every setting of ``cfg`` that needs ``_C``."""
    found = []
    deform = _get(cfg, "MODEL.RESNETS.DEFORM_ON_PER_STAGE", [])
    if any(deform):
        found.append(("MODEL.RESNETS.DEFORM_ON_PER_STAGE", list(deform), "deformable convolution"))
    rotated_names = {
        "MODEL.PROPOSAL_GENERATOR.NAME": {"RRPN"},
        "MODEL.ROI_HEADS.NAME": {"RROIHeads"},
        "MODEL.ANCHOR_GENERATOR.NAME": {"RotatedAnchorGenerator"},
        "MODEL.ROI_BOX_HEAD.POOLER_TYPE": {"ROIAlignRotated"},
        "MODEL.ROI_MASK_HEAD.POOLER_TYPE": {"ROIAlignRotated"},
        "MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE": {"ROIAlignRotated"},
    }
    for key, names in rotated_names.items():
        value = _get(cfg, key)
        if value in names:
            found.append((key, value, "rotated boxes (rotated IoU, NMS and RoIAlign)"))
    return found


def check_compiled_ops(cfg, *, available=None):
    """Raise `CompiledOpsRequired` if ``cfg`` needs ``_C`` and it is not built.

    ``available`` overrides the detection of ``_C`` (for tests and callers that know).
    """
    needed = compiled_ops_needed(cfg)
    if not needed:
        return
    if available is None:
        available = has_compiled_ops()
    if available:
        return
    lines = [f"  {key} = {value!r} needs {feature}" for key, value, feature in needed]
    raise CompiledOpsRequired(
        "this config needs Detectron2's compiled extension detectron2._C, which this Detectron2 "
        "does not have (a pure-Python build, e.g. the one tools/install_detectron2.py installs):\n"
        + "\n".join(lines)
        + f"\nEither change those keys, or {SOURCE_BUILD_HINT}."
    )
