"""Learning-rate schedules of the reference recipe, as per-iteration multipliers for LambdaLR.

The reference sets the cosine/step value once per epoch (1-based epoch e, so epoch 1 is already a
little below the base lr and the last epoch sits at the minimum) and overrides it per iteration
during warm-up, going linearly from an absolute `warmup_from` to the value at the warm-up's end.
Stepping a LambdaLR every iteration keeps the state in `scheduler.state_dict()`, so a resumed run
continues on the same curve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int = 256) -> float:
    """Linear scaling rule (Goyal et al.): lr grows with the global batch."""
    return base_lr * global_batch / reference_batch


def reference_warmup_epochs(global_batch: int, epochs: int) -> int:
    """PyContrast forces warm-up for batches above 256: 10 epochs for long runs, else 5."""
    if global_batch <= 256:
        return 0
    return 10 if epochs > 500 else 5


@dataclass(frozen=True)
class Schedule:
    """lr(iteration) for `epochs` epochs of `iters_per_epoch` iterations (iteration is 0-based)."""

    base_lr: float
    epochs: int
    iters_per_epoch: int
    kind: str = "cosine"  # cosine | step
    steps: tuple = ()
    gamma: float = 0.1
    cosine_min_factor: float | None = None
    warmup_epochs: int = 0
    warmup_from: float = 0.01

    def __post_init__(self):
        if self.kind not in ("cosine", "step"):
            raise ValueError(f"Unknown lr schedule {self.kind!r}; use cosine or step.")
        if self.iters_per_epoch < 1:
            raise ValueError("iters_per_epoch must be >= 1 (is the dataset smaller than one batch?)")

    def epoch_lr(self, epoch: int) -> float:
        """The per-epoch value for a 1-based epoch."""
        if self.kind == "cosine":
            factor = self.gamma**3 if self.cosine_min_factor is None else self.cosine_min_factor
            eta_min = self.base_lr * factor
            return eta_min + (self.base_lr - eta_min) * (1 + math.cos(math.pi * epoch / self.epochs)) / 2
        n_decays = sum(epoch > s for s in self.steps)
        return self.base_lr * self.gamma**n_decays

    def lr(self, iteration: int) -> float:
        epoch = iteration // self.iters_per_epoch + 1
        if epoch <= self.warmup_epochs:
            target = self.epoch_lr(self.warmup_epochs)
            if self.kind == "step":
                target = self.base_lr
            p = iteration / (self.warmup_epochs * self.iters_per_epoch)
            return self.warmup_from + p * (target - self.warmup_from)
        return self.epoch_lr(epoch)

    def multiplier(self, iteration: int) -> float:
        """For torch.optim.lr_scheduler.LambdaLR with the optimizer's lr set to base_lr."""
        return self.lr(iteration) / self.base_lr


def build_schedule(solver_cfg, global_batch: int, iters_per_epoch: int) -> Schedule:
    """The pretraining schedule from the SOLVER section of a config."""
    base = solver_cfg.BASE_LR
    if solver_cfg.SCALE_LR:
        base = scaled_lr(base, global_batch, solver_cfg.REFERENCE_BATCH)
    warm = solver_cfg.WARMUP_EPOCHS
    if warm < 0:
        warm = reference_warmup_epochs(global_batch, solver_cfg.EPOCHS)
    return Schedule(
        base_lr=base,
        epochs=solver_cfg.EPOCHS,
        iters_per_epoch=iters_per_epoch,
        kind=solver_cfg.SCHEDULE,
        steps=tuple(solver_cfg.STEPS),
        gamma=solver_cfg.GAMMA,
        cosine_min_factor=solver_cfg.COSINE_MIN_FACTOR,
        warmup_epochs=warm,
        warmup_from=solver_cfg.WARMUP_FROM,
    )
