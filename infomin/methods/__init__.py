"""Pretraining methods: InsDis, CMC, MoCo, PIRL, MoCov2, CMCv2, InfoMin, SimCLR and Supervised.

`build_method(name, **settings)` returns an nn.Module; `module(batch)` -> {"loss", ...logged
scalars}; `module.momentum_update()` after each optimizer step. `METHODS` holds one entry per
method (class, preset, views, linear-evaluation preset); `register_method` adds one. See docs/methods.md.
"""
from infomin.methods.bank import MemoryBankMethod
from infomin.methods.base import ContrastiveMethod, Method
from infomin.methods.moco import MoCoMethod
from infomin.methods.registry import (
    METHOD_DEFAULTS, METHOD_LINEAR, METHOD_VIEWS, METHODS, MethodSpec, build_method, canonical_name,
    check_settings, declared_settings, register_method, registered_method, resolve_settings,
    unregister_method,
)
from infomin.methods.settings import DATA_FACTS, Rule, Setting, in_range, one_of
from infomin.methods.simclr import SimCLRMethod
from infomin.methods.supervised import SupervisedMethod

__all__ = [
    "DATA_FACTS", "METHODS", "METHOD_DEFAULTS", "METHOD_LINEAR", "METHOD_VIEWS", "ContrastiveMethod",
    "MemoryBankMethod", "Method", "MethodSpec", "MoCoMethod", "Rule", "Setting", "SimCLRMethod",
    "SupervisedMethod",
    "build_method", "canonical_name", "check_settings", "declared_settings", "in_range", "one_of",
    "register_method", "registered_method", "resolve_settings", "unregister_method",
]
