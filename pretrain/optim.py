"""The optimizer named by a config section (SOLVER for pretraining, LINEAR for linear evaluation).

`OPTIMIZER_IMPL` picks torch's implementation of the update: `fused` (one kernel for all
parameters), `foreach` (a few multi-tensor kernels) or `for_loop` (one small kernel per tensor op
and parameter, torch's CPU default and what PyContrast ran). `auto` takes fused where torch has a
fused kernel for the optimizer on the parameters' device (CUDA), else foreach. For SGD the three
give bit-identical parameters on the CPU (tested); on a GPU fused may differ in the last bit.
"""
from __future__ import annotations

import inspect

import torch

# name -> how to build it from the section's MOMENTUM / WEIGHT_DECAY; SGD is the reference's
OPTIMIZERS = {
    "SGD": lambda params, lr, s, impl: torch.optim.SGD(params, lr=lr, momentum=s.MOMENTUM,
                                                       weight_decay=s.WEIGHT_DECAY, **impl),
    # decoupled weight decay; MOMENTUM has no meaning here (Adam keeps its default betas)
    "AdamW": lambda params, lr, s, impl: torch.optim.AdamW(params, lr=lr, weight_decay=s.WEIGHT_DECAY, **impl),
}
OPTIMIZER_CLASSES = {"SGD": torch.optim.SGD, "AdamW": torch.optim.AdamW}
IMPLS = ("auto", "fused", "foreach", "for_loop")


def _tensors(params) -> list[torch.Tensor]:
    out = []
    for p in params:
        out.extend(p["params"] if isinstance(p, dict) else [p])
    return out


def fused_unsupported(name: str, tensors: list[torch.Tensor]) -> str | None:
    """Why torch has no fused `name` for these parameters (None: it has one)."""
    cls = OPTIMIZER_CLASSES[name]
    if "fused" not in inspect.signature(cls.__init__).parameters:
        return f"torch {torch.__version__} has no fused {name}"
    try:  # torch's own list of devices with fused optimizer kernels (private, hence the guard)
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
        devices = set(_get_fused_kernels_supported_devices())
    except Exception:  # noqa: BLE001 - an unknown torch: only trust CUDA
        devices = {"cuda"}
    bad = {f"{t.device.type}/{t.dtype}" for t in tensors
           if t.device.type not in devices or not torch.is_floating_point(t)}
    if bad:
        return f"torch's fused {name} does not support parameters on {', '.join(sorted(bad))}"
    return None


def resolve_impl(name: str, impl: str, tensors: list[torch.Tensor]) -> dict:
    """The `fused` / `foreach` keywords for `impl` (see the module docstring)."""
    if impl not in IMPLS:
        raise ValueError(f"Unknown optimizer implementation {impl!r}; choose one of {', '.join(IMPLS)}.")
    if impl == "auto":
        on_cuda = bool(tensors) and all(t.device.type == "cuda" for t in tensors)
        impl = "fused" if on_cuda and fused_unsupported(name, tensors) is None else "foreach"
    if impl == "fused":
        reason = fused_unsupported(name, tensors)
        if reason:
            raise ValueError(f"OPTIMIZER_IMPL fused: {reason}; use foreach or auto.")
        return {"fused": True, "foreach": False}
    return {"fused": False, "foreach": impl == "foreach"}


def build_optimizer(cfg_solver, params, base_lr: float) -> torch.optim.Optimizer:
    """`cfg_solver.OPTIMIZER` over `params` at `base_lr` (the schedule multiplies it per step), in
    the implementation `cfg_solver.OPTIMIZER_IMPL` names (auto when the section has no such key).
    Build it after the parameters are on their device: auto looks at where they are."""
    name = cfg_solver.OPTIMIZER
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    params = list(params)
    impl = resolve_impl(name, cfg_solver.get("OPTIMIZER_IMPL", "auto"), _tensors(params))
    return OPTIMIZERS[name](params, base_lr, cfg_solver, impl)


def optimizer_impl(optimizer: torch.optim.Optimizer) -> str:
    """Which implementation `optimizer` steps with: fused, foreach or for_loop."""
    group = optimizer.param_groups[0]
    return "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for_loop"
