"""Every tool's config class: yacs/fvcore `CfgNode` whose unknown keys get a "Did you mean" answer.

Why one place: a misspelt key (`SOLVER.BASE_LRR`, `LEARN.MODEE`) must say which key is wrong and
which real keys are close, whichever tool reads it. `KeySuggestions` adds that check in front of
yacs' merges and is shared by `CfgNode` here (pretraining, linear eval, view learning, view
sweeps) and by the Detectron2 extension's config class (`infomin.detection.config`).

`load_cfg(defaults, path, opts)` is the one loading order: defaults <- YAML file (its `_BASE_`
chain, as fvcore resolves it; a packaged name like ``views/stl10_semi_vp_RGB.yaml`` is found
through `infomin.configs.resolve_config_file`) <- ``KEY VALUE`` opts; validated and frozen.
"""
from __future__ import annotations

import difflib
from typing import Callable

from fvcore.common.config import CfgNode as _FvCfgNode

from infomin.configs import resolve_config_file

__all__ = ["CfgNode", "KeySuggestions", "UnknownKeyError", "load_cfg"]


class UnknownKeyError(KeyError):
    """A config file or opt names a key the defaults do not have."""

    def __str__(self):  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class KeySuggestions:
    """Mixin for a yacs `CfgNode` subclass: unknown keys raise `UnknownKeyError` naming the key and
    the closest real ones, before yacs' own merge (whose error names neither)."""

    def merge_from_other_cfg(self, cfg_other):
        _check_known_keys(self, cfg_other, prefix="")
        return super().merge_from_other_cfg(cfg_other)

    def merge_from_list(self, cfg_list):
        if len(cfg_list) % 2:
            raise ValueError(
                f"Config opts must be KEY VALUE pairs, got an odd number of items: {list(cfg_list)}"
            )
        for key in cfg_list[0::2]:
            check_full_key(self, key)
        return super().merge_from_list(cfg_list)


class CfgNode(KeySuggestions, _FvCfgNode):
    """fvcore CfgNode (`_BASE_` files) with key suggestions; an int where the default is a float
    (`SOLVER.BASE_LR 1`, `BASE_LR: 1`) is read as that float."""

    def merge_from_other_cfg(self, cfg_other):
        _promote_ints(self, cfg_other)
        return super().merge_from_other_cfg(cfg_other)

    def merge_from_list(self, cfg_list):
        if len(cfg_list) % 2:
            return super().merge_from_list(cfg_list)  # KeySuggestions' pairs error
        pairs = []
        for key, value in zip(cfg_list[0::2], cfg_list[1::2]):
            current = check_full_key(self, key)
            value = self._decode_cfg_value(value)
            if _is_int(value) and isinstance(current, float):
                value = float(value)
            pairs += [key, value]
        return super().merge_from_list(pairs)


def load_cfg(defaults: Callable[[], CfgNode], path: str | None = None, opts: list[str] | None = None,
             validate: Callable[[CfgNode], None] | None = None) -> CfgNode:
    """``defaults()`` <- YAML file or packaged name (with its `_BASE_` chain) <- KEY VALUE opts;
    then ``validate(cfg)``; returned frozen. Unknown keys name ``defaults`` as the list of keys."""
    cfg = defaults()
    try:
        if path:
            cfg.merge_from_file(resolve_config_file(path))
        if opts:
            cfg.merge_from_list(list(opts))
    except UnknownKeyError as err:
        where = f"{defaults.__module__}.{defaults.__qualname__}()"
        raise UnknownKeyError(f"{err} See {where} for every key and its default.") from None
    if validate is not None:
        validate(cfg)
    cfg.freeze()
    return cfg


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _promote_ints(root, other) -> None:
    for k, v in other.items():
        if k in root:
            if isinstance(v, dict) and isinstance(root[k], dict):
                _promote_ints(root[k], v)
            elif _is_int(v) and isinstance(root[k], float):
                other[k] = float(v)


def _all_keys(node, prefix=""):
    for k, v in node.items():
        full = f"{prefix}{k}"
        yield full
        if isinstance(v, dict):
            yield from _all_keys(v, full + ".")


def unknown_key_error(root, full_key: str) -> UnknownKeyError:
    close = difflib.get_close_matches(full_key, list(_all_keys(root)), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownKeyError(f"Unknown config key {full_key!r}.{hint}")


def _handled_by_yacs(root, full_key: str) -> bool:
    """Deprecated and renamed keys (yacs' own registry) get yacs' warning or message."""
    return any(getattr(root, test, lambda _: False)(full_key)
               for test in ("key_is_deprecated", "key_is_renamed"))


def check_full_key(root, full_key: str):
    """The current value at `full_key`, or `UnknownKeyError` when there is no such key."""
    node = root
    for part in full_key.split("."):
        if isinstance(node, dict) and part not in node and _new_allowed(node):
            return None
        if not isinstance(node, dict) or part not in node:
            if _handled_by_yacs(root, full_key):
                return None
            raise unknown_key_error(root, full_key)
        node = node[part]
    return node


def _new_allowed(node) -> bool:
    return bool(getattr(node, "is_new_allowed", lambda: False)())


def _check_known_keys(root, other, prefix: str) -> None:
    node = root
    if prefix:
        for part in prefix.rstrip(".").split("."):
            node = node[part]
    if _new_allowed(node):
        return
    for k, v in other.items():
        if k == "_BASE_":
            continue
        if k not in node:
            if _handled_by_yacs(root, prefix + k):
                continue
            raise unknown_key_error(root, prefix + k)
        if isinstance(v, dict) and isinstance(node[k], dict):
            _check_known_keys(root, v, prefix + k + ".")
