"""Detectron2's config with the project's unknown-key answer: a misspelt `KEY` in a YAML file or a
`KEY VALUE` override names the key and the closest real ones (`infomin.config.KeySuggestions`)
instead of yacs' bare "Non-existent config key"."""
from __future__ import annotations

from detectron2.config import CfgNode as _D2CfgNode
from detectron2.config import get_cfg as _d2_get_cfg

from infomin.config import KeySuggestions

__all__ = ["CfgNode", "get_cfg"]


class CfgNode(KeySuggestions, _D2CfgNode):
    """detectron2.config.CfgNode (its `_BASE_` files and version upgrades) whose unknown keys get
    suggestions."""


def get_cfg() -> CfgNode:
    """Detectron2's defaults (`detectron2.config.get_cfg`) as a `CfgNode` of this module."""
    return CfgNode(_d2_get_cfg())
