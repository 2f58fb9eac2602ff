"""What a view stage is, the knobs it owns, and the registry that policies name stages from.

A stage keeps everything about one step of a view in one class: how its random parameters are
drawn (``sample``, from the RNGs the reference uses, in the reference's order), how they are
applied on a PIL image (``render_pil``, the reference's own ops) and on a uint8 HxWx3 array
(``render_cv2``, the OpenCV backend), the reference-style torchvision transform it stands for
(``reference``, the test oracle), the checks a policy must pass for it (``validate``) and the
knobs that change it (``knobs``). The pipeline, the reference pipeline, ``apply_overrides`` and
the command-line tools iterate the registry instead of naming stages themselves.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

__all__ = ["Knob", "Stage", "StageRegistry", "STAGES", "ViewContext", "fired", "check_probability",
           "on_fired"]


@dataclass(frozen=True)
class Knob:
    """One sweepable number of a stage (a view-sweep axis, a VIEWS.<NAME> config key, a CLI flag).

    ``apply(draft, value) -> {field: new value}`` maps the knob onto the policy, where ``draft``
    reads the policy with the caller's field overrides already applied (``draft.name``,
    ``draft.jitter``, ...) and raises ValueError when the knob cannot apply. ``apply=None``: the
    knob is the policy field (or stage setting) of the same name, set as given.
    """

    name: str
    help: str
    apply: Callable[[Any, Any], dict] | None = None
    type: type = float


@dataclass(frozen=True)
class ViewContext:
    """What a stage needs besides the policy: the output colour space and RandAugment's op list."""

    color_space: str = "RGB"
    ra_ops: str = "rgb"

    @classmethod
    def build(cls, color_space: str = "RGB", ra_ops: str | None = None) -> "ViewContext":
        """Canonical space name; ``ra_ops=None``: the reference's op list for that space."""
        from ..colorspace import canonical
        from .randaugment import default_ra_ops

        space = canonical(color_space)
        return cls(space, ra_ops or default_ra_ops(space))


def fired(p: float) -> bool:
    """torchvision's RandomApply test (draws nothing when the op always applies)."""
    return True if p >= 1.0 else not (p < torch.rand(1))


def on_fired(x: torch.Tensor, params: list, fn) -> torch.Tensor:
    """Apply ``fn(x[fired], [their params])`` to the views whose params are not None."""
    idx = [i for i, p in enumerate(params) if p is not None]
    if not idx:
        return x
    if len(idx) == len(params):
        return fn(x, params)
    sel = torch.as_tensor(idx, device=x.device)
    out = x.clone()
    out[sel] = fn(x[sel], [params[i] for i in idx])
    return out


def check_probability(policy, field: str) -> None:
    """A policy field that must be a probability (Policy.extra settings too, via policy.setting)."""
    value = policy.setting(field)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"policy {policy.name!r}: {field}={value} is not a probability in [0, 1]")


class Stage:
    """Base class of a view stage; subclasses are registered with ``@STAGES.register``.

    Instances are built once per transform, ``cls(policy, context)``, so they may hold prepared
    objects (timm's RandAugment op, a ColorJitter's ranges). ``sample`` returns the stage's
    parameters for one view, or None when the stage does not fire (its render is then skipped).
    """

    #: The name policies use in ``Policy.stages``.
    name: ClassVar[str]
    #: False for the fixed steps every view has (crop and flip first, colour space and
    #: normalisation last), which policies do not list in ``Policy.stages``.
    in_policy: ClassVar[bool] = True
    #: The stage's knobs (see :class:`Knob`).
    knobs: ClassVar[tuple[Knob, ...]] = ()
    #: Settings of a stage defined outside the library (name -> default), held in
    #: ``Policy.extra`` and read with ``policy.setting(name)``; built-in stages use Policy fields.
    settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, policy, context: ViewContext):
        self.policy = policy
        self.context = context

    @classmethod
    def validate(cls, policy) -> None:
        """Raise ValueError naming the policy if its settings for this stage are invalid (called
        for every policy, whether or not it lists the stage)."""

    def sample(self, img: Image.Image):
        raise NotImplementedError

    def render_pil(self, img: Image.Image, params) -> Image.Image:
        raise NotImplementedError

    def render_cv2(self, arr: np.ndarray, params) -> np.ndarray:
        """Default: the PIL op on the array (for ops with no OpenCV twin, e.g. RandAugment)."""
        return np.asarray(self.render_pil(Image.fromarray(arr), params))

    def draw_at_render(self, params):
        """The draws ``render_pil`` makes itself (RandAugment's, from Python's and NumPy's RNGs),
        made ahead so a batched renderer gets them as parameters; default: none, ``params`` as is."""
        return params

    def render_batch(self, x: torch.Tensor, params: list) -> torch.Tensor:
        """The op on a batch of views (``DATA.LOADER gpu``): x is float32 [N, 3, H, W] holding grey
        levels 0..255 on any device, ``params`` one entry per view (None: not fired; after
        ``draw_at_render``). See :mod:`infomin.views.batchops`."""
        raise NotImplementedError(f"view stage {self.name!r} has no batched renderer (render_batch); "
                                  "use DATA.LOADER cpu for policies with this stage")

    @classmethod
    def reference(cls, policy, context: ViewContext) -> list:
        """The reference-style torchvision transforms of this stage, in order (may be empty)."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


class StageRegistry:
    """name -> Stage subclass, in registration order (the order knobs are applied and listed).

    Not fvcore's Registry: stages are keyed by the name policies use, not the class name, and
    tests add and remove stages (``unregister``).
    """

    def __init__(self):
        self._stages: dict[str, type[Stage]] = {}

    def register(self, cls: type[Stage]) -> type[Stage]:
        """Class decorator: add a stage; its name and knob names must be new."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"stage class {cls.__name__} needs a class attribute `name` (the name policies use)")
        if name in self._stages:
            raise ValueError(f"a view stage named {name!r} is already registered ({self._stages[name].__name__})")
        taken = set(self.knobs()) | set(self.settings())
        clash = sorted(({k.name for k in cls.knobs} | set(cls.settings)) & taken)
        if clash:
            raise ValueError(f"stage {name!r}: knob/setting name(s) {clash} already belong to another stage")
        self._stages[name] = cls
        return cls

    def unregister(self, name: str) -> type[Stage]:
        return self._stages.pop(name)

    def get(self, name: str) -> type[Stage]:
        if name not in self._stages:
            raise ValueError(f"unknown view stage {name!r}; registered: {', '.join(self._stages)}")
        return self._stages[name]

    def __contains__(self, name) -> bool:
        return name in self._stages

    def __iter__(self):
        return iter(self._stages.values())

    def policy_stages(self) -> tuple[str, ...]:
        """Names a policy may list in ``Policy.stages``."""
        return tuple(n for n, cls in self._stages.items() if cls.in_policy)

    def knobs(self) -> dict[str, Knob]:
        """Every registered stage's knobs, name -> Knob, in registration order."""
        return {k.name: k for cls in self._stages.values() for k in cls.knobs}

    def settings(self) -> dict[str, Any]:
        """Settings of stages defined outside the library, name -> default."""
        return {k: v for cls in self._stages.values() for k, v in cls.settings.items()}

    def validate(self, policy) -> None:
        for cls in self._stages.values():
            cls.validate(policy)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(self._stages)})"


#: The view stages, built-in ones registered by importing :mod:`infomin.views.stages`.
STAGES = StageRegistry()
