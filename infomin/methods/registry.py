"""The registry of methods: one line per method, holding its class, preset and views.

A preset holds the reference value of each setting where it differs from (or should be stated
over) the class's `Setting.default`; `METHOD_DEFAULTS[name]` is the two merged, i.e. the value of
every setting the method takes. `build_method` fills only the settings the caller did not give,
so an explicit setting always wins. A setting the method does not take is an error (beta,
which only weights the jigsaw loss, is an error unless it equals the default), so nothing given
on purpose is silently dropped. `METHOD_VIEWS[name]` holds the matching view settings for the
data pipeline (infomin.views). The seven predefined methods are PyContrast's override table.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

from infomin.methods.bank import MemoryBankMethod
from infomin.methods.base import Method
from infomin.methods.moco import MoCoMethod
from infomin.methods.settings import DATA_FACTS, Setting
from infomin.methods.simclr import SimCLRMethod
from infomin.methods.supervised import SupervisedMethod


@dataclass(frozen=True)
class MethodSpec:
    cls: type[Method]
    preset: Mapping[str, Any] = field(default_factory=dict)  # reference values of its settings
    views: Mapping[str, Any] = field(default_factory=dict)  # policy, crop_min, color_space, two_views
    fixed: Mapping[str, Any] = field(default_factory=dict)  # constructor arguments no user changes
    # how its published linear-evaluation number was obtained: {"aug": "RA" | "NULL"}
    linear: Mapping[str, Any] = field(default_factory=lambda: dict(LINEAR_PLAIN))

    @property
    def defaults(self) -> dict[str, Any]:
        return {s.name: self.preset.get(s.name, s.default) for s in self.cls.SETTINGS}


METHODS: dict[str, MethodSpec] = {}
# linear-evaluation presets (PyContrast main_linear.py --aug_linear): RandAugment on the training
# crops, as its docs/RUN.md runs it, or the plain crop + flip (its README's "CMC (no RA)")
LINEAR_RA = {"aug": "RA"}
LINEAR_PLAIN = {"aug": "NULL"}
LINEAR_AUGS = ("NULL", "RA")


def register_method(name: str, cls: type[Method], preset: Mapping[str, Any] | None = None,
                    views: Mapping[str, Any] | None = None, *, linear: Mapping[str, Any] | None = None,
                    **fixed: Any) -> MethodSpec:
    """Add a method: `cls` a Method subclass (see infomin.methods.base for the contract), `preset`
    its reference setting values, `views` its view preset, `linear` its linear-evaluation preset
    (`{"aug": "RA"}` or the default `{"aug": "NULL"}`: the protocol its published number used),
    `fixed` constructor arguments that are part of the method rather than settings (CMC's two
    streams)."""
    linear = dict(LINEAR_PLAIN if linear is None else linear)
    if set(linear) != {"aug"} or linear["aug"] not in LINEAR_AUGS:
        raise ValueError(f"method {name!r}: linear must be {{'aug': one of {', '.join(LINEAR_AUGS)}}}, "
                         f"got {linear!r}")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"method {name!r}: {cls!r} is not a subclass of infomin.methods.Method")
    clash = [n for n in METHODS if n.lower() == str(name).lower()]
    if clash:
        raise ValueError(f"method {name!r} is already registered (as {clash[0]!r}); unregister it first")
    spec = MethodSpec(cls, dict(preset or {}), dict(views or {}), fixed, linear)
    declared = [s.name for s in cls.SETTINGS]
    if len(set(declared)) != len(declared):
        raise ValueError(f"{cls.__name__}.SETTINGS declares a setting twice: {declared}")
    undeclared = sorted(set(spec.preset) - set(declared))
    if undeclared:
        raise ValueError(f"method {name!r}: preset names {undeclared}, which {cls.__name__}.SETTINGS "
                         f"does not declare ({', '.join(declared)})")
    for setting in cls.SETTINGS:
        problem = setting.problem(spec.defaults[setting.name])
        if problem:
            raise ValueError(f"method {name!r}: its reference value is wrong: {problem}")
    if set(fixed) & set(declared):
        raise ValueError(f"method {name!r}: {sorted(set(fixed) & set(declared))} are settings, not fixed")
    bad_facts = sorted({s.name for s in cls.FROM_DATA} - set(DATA_FACTS))
    if bad_facts:
        raise ValueError(f"{cls.__name__}.FROM_DATA names {bad_facts}; the data facts are {', '.join(DATA_FACTS)}")
    METHODS[name] = spec
    return spec


def unregister_method(name: str) -> MethodSpec:
    return METHODS.pop(canonical_name(name))


@contextlib.contextmanager
def registered_method(name: str, cls: type[Method], preset=None, views=None, *, linear=None,
                      **fixed) -> Iterator[MethodSpec]:
    """`register_method` for the duration of a `with` block (tests, experiments)."""
    spec = register_method(name, cls, preset, views, linear=linear, **fixed)
    try:
        yield spec
    finally:
        METHODS.pop(name, None)


def _views(policy, crop_min, color_space="RGB", two_views=True) -> dict[str, Any]:
    # policy: infomin.views policy; crop_min: RandomResizedCrop lower bound (0.08 with a memory
    # bank, 0.2 with a queue); two_views: False where the positive is the bank entry (view1 only)
    return {"policy": policy, "crop_min": crop_min, "color_space": color_space, "two_views": two_views}


# PyContrast's override table; the shared values (ResNet-50, feat_dim 128, 65536 negatives,
# beta 0.5, bank momentum 0.5, EMA 0.999, shuffle-BN with BN groups of 32 images) are the classes'
# Setting defaults. Linear evaluation: PyContrast's docs/RUN.md evaluates with `--aug_linear RA`
# and its README marks CMC alone as "(no RA)", so every other method's number used RandAugment.
_LINEAR, _MLP = {"head": "linear", "temperature": 0.07}, {"head": "mlp", "temperature": 0.2}
register_method("InsDis", MemoryBankMethod, {**_LINEAR, "jigsaw": False}, _views("A", 0.08, two_views=False),
                linear=LINEAR_RA)
register_method("CMC", MemoryBankMethod, {**_LINEAR, "jigsaw": False}, _views("C", 0.08, "YDbDr", False),
                linear=LINEAR_PLAIN, two_stream=True)
register_method("MoCo", MoCoMethod, {**_LINEAR, "jigsaw": False}, _views("A", 0.2), linear=LINEAR_RA)
register_method("PIRL", MemoryBankMethod, {**_LINEAR, "jigsaw": True}, _views("A", 0.08, two_views=False),
                linear=LINEAR_RA)
register_method("MoCov2", MoCoMethod, {**_MLP, "jigsaw": False}, _views("B", 0.2), linear=LINEAR_RA)
register_method("CMCv2", MoCoMethod, {**_MLP, "jigsaw": False}, _views("E", 0.2, "YDbDr"), linear=LINEAR_RA,
                two_stream=True)
register_method("InfoMin", MoCoMethod, {**_MLP, "temperature": 0.15, "jigsaw": True}, _views("D", 0.2),
                linear=LINEAR_RA)
# SimCLR (not in PyContrast): its MLP head and t = 0.1, crops 0.08-1 and MoCo v2's views (which
# took SimCLR's jitter, grayscale and blur); the project's CPU-budget view sweep uses it
register_method("SimCLR", SimCLRMethod, {"head": "mlp", "temperature": 0.1}, _views("B", 0.08),
                linear=LINEAR_PLAIN)
# the usual supervised ImageNet augmentation (RandomResizedCrop 0.08-1 + flip), not a policy; no
# published linear number, so the plain linear protocol
register_method("Supervised", SupervisedMethod, {}, _views(None, 0.08, two_views=False), linear=LINEAR_PLAIN)


class _RegistryView(Mapping):
    """A read-only name -> dict view of METHODS that follows later registrations."""

    def __init__(self, part: Callable[[MethodSpec], dict]):
        self._part = part

    def __getitem__(self, name: str) -> dict:
        return dict(self._part(METHODS[name]))

    def __iter__(self):
        return iter(METHODS)

    def __len__(self) -> int:
        return len(METHODS)

    def __repr__(self) -> str:
        return repr(dict(self))


METHOD_DEFAULTS: Mapping[str, dict[str, Any]] = _RegistryView(lambda spec: spec.defaults)
METHOD_VIEWS: Mapping[str, dict[str, Any]] = _RegistryView(lambda spec: spec.views)
METHOD_LINEAR: Mapping[str, dict[str, Any]] = _RegistryView(lambda spec: spec.linear)


def declared_settings() -> dict[str, Setting]:
    """Every setting some registered method takes, by name (the first declaration of a name)."""
    out: dict[str, Setting] = {}
    for spec in METHODS.values():
        for setting in spec.cls.SETTINGS:
            out.setdefault(setting.name, setting)
    return out


def canonical_name(name: str) -> str:
    """The registered spelling of a method name (matching ignores case)."""
    lookup = {n.lower(): n for n in METHODS}
    if not isinstance(name, str) or name.lower() not in lookup:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return lookup[name.lower()]


def resolve_settings(name: str, **given: Any) -> dict[str, Any]:
    """The settings `build_method` would use: the caller's non-None values over the defaults."""
    return _resolve(name, given, need_data=True)


def check_settings(name: str, **given: Any) -> None:
    """Raise the ValueError/TypeError `build_method(name, **given)` would, before any data is
    known (a config is checked when it is loaded, not when training starts)."""
    _resolve(name, given, need_data=False)


def _resolve(name: str, given: dict, need_data: bool) -> dict[str, Any]:
    name = canonical_name(name)
    spec = METHODS[name]
    known = (*declared_settings(), *DATA_FACTS)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TypeError(f"build_method got unknown setting(s) {unknown}; known: {', '.join(known)}")
    defaults = spec.defaults
    given = {k: v for k, v in given.items() if v is not None}
    for key, value in given.items():
        if key not in defaults and key not in DATA_FACTS:
            raise ValueError(
                f"{name} does not use {key}={value!r} (its settings: {', '.join(defaults)}); "
                "remove it or leave it unset"
            )
    settings = {**defaults, **{k: v for k, v in given.items() if k in defaults}}
    for setting in spec.cls.SETTINGS:
        problem = setting.problem(settings[setting.name])
        if problem:
            raise ValueError(problem)
    spec.cls.check_settings(name, settings, defaults)
    for fact in spec.cls.FROM_DATA if need_data else ():
        value = given.get(fact.name)
        if fact.problem(value):
            raise ValueError(f"{name} needs {fact.name} ({fact.help}; {fact.rule.must}), got {value!r}")
    facts = {k: given[k] for k in DATA_FACTS if k in given}
    spec.cls.resolve_auto(settings, facts)
    settings.update(facts)
    return settings


def build_method(name: str, **settings: Any) -> nn.Module:
    """Build a registered method by name; unset (None) settings take METHOD_DEFAULTS[name].

    The settings are those its class declares (see docs/methods.md); the built-in contrastive
    methods take arch, width, feat_dim, head, temperature, queue_size (the number of negatives:
    queue length, or bank draws per image), jigsaw, beta, momentum (EMA momentum for queue
    methods, bank-entry momentum for bank methods) and, queue methods, shuffle_bn and bn_splits.
    Data facts: bank methods need `dataset_size`, Supervised needs `num_classes`; the queue
    methods' bn_splits="auto" (their default) uses `batch_per_process` if given (else 1 group).
    """
    s = resolve_settings(name, **settings)
    name = canonical_name(name)
    spec = METHODS[name]
    kwargs = {setting.name: s[setting.name] for setting in spec.cls.SETTINGS + spec.cls.FROM_DATA}
    method = spec.cls(**kwargs, **spec.fixed)
    method.name = name
    method.settings = {k: v for k, v in s.items() if k not in DATA_FACTS}  # "auto" resolved
    return method
