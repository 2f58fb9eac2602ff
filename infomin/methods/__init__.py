"""Pretraining methods: InsDis, CMC, MoCo, PIRL, MoCov2, CMCv2, InfoMin and Supervised.

`build_method(name, **settings)` returns an nn.Module; `module(batch)` -> {"loss", ...logged
scalars}; `module.momentum_update()` after each optimizer step. See docs/methods.md.
"""
from infomin.methods.bank import MemoryBankMethod
from infomin.methods.base import ContrastiveMethod, Method
from infomin.methods.moco import MoCoMethod
from infomin.methods.registry import METHOD_DEFAULTS, METHOD_VIEWS, build_method, canonical_name, resolve_settings
from infomin.methods.supervised import SupervisedMethod

__all__ = [
    "METHOD_DEFAULTS", "METHOD_VIEWS", "ContrastiveMethod", "MemoryBankMethod", "Method", "MoCoMethod",
    "SupervisedMethod", "build_method", "canonical_name", "resolve_settings",
]
