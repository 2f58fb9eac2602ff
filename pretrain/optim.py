"""The optimizer named by a config section (SOLVER for pretraining, LINEAR for linear evaluation)."""
from __future__ import annotations

import torch

# name -> how to build it from the section's MOMENTUM / WEIGHT_DECAY; SGD is the reference's
OPTIMIZERS = {
    "SGD": lambda params, lr, s: torch.optim.SGD(params, lr=lr, momentum=s.MOMENTUM,
                                                 weight_decay=s.WEIGHT_DECAY),
    # decoupled weight decay; MOMENTUM has no meaning here (Adam keeps its default betas)
    "AdamW": lambda params, lr, s: torch.optim.AdamW(params, lr=lr, weight_decay=s.WEIGHT_DECAY),
}


def build_optimizer(cfg_solver, params, base_lr: float) -> torch.optim.Optimizer:
    """`cfg_solver.OPTIMIZER` over `params` at `base_lr` (the schedule multiplies it per step)."""
    name = cfg_solver.OPTIMIZER
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    return OPTIMIZERS[name](params, base_lr, cfg_solver)
