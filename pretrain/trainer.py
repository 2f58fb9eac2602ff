"""A minimal trainer with hooks, in the style of Detectron2's `TrainerBase` / `HookBase`.

Pretraining must run where Detectron2 is absent, so this is a small re-statement rather than an
import. A trainer runs `run_step` from `start_iter` to `max_iter`; hooks get `before_train`,
`before_step`, `after_step` and `after_train` calls in registration order. As in Detectron2,
`trainer.iter` is the 0-based index of the step in progress inside the step calls, and the
number of completed steps once training ends (`max_iter` when it ran to the end). A hook may
end training early with `trainer.request_stop()`: the loop stops after the current step's hooks.
"""
from __future__ import annotations

import weakref


class HookBase:
    """Override the calls you need; `self.trainer` is set when the hook is registered."""

    trainer: "TrainerBase" = None

    def before_train(self):
        pass

    def after_train(self):
        """Runs even when training failed (then `trainer.iter < trainer.max_iter`)."""

    def before_step(self):
        pass

    def after_step(self):
        pass


class TrainerBase:
    """The iteration loop and its hooks; subclasses implement `run_step`.

    `storage` holds the latest logged scalars (name -> float), written by whichever hook
    reduces them; `iter`, `start_iter` and `max_iter` the position.
    """

    def __init__(self):
        self._hooks: list[HookBase] = []
        self.iter = self.start_iter = self.max_iter = 0
        self.storage: dict[str, float] = {}
        self.stop_requested = False

    def register_hooks(self, hooks) -> None:
        for hook in hooks:
            if hook is None:
                continue
            hook.trainer = weakref.proxy(self)  # no reference cycle trainer <-> hook
            self._hooks.append(hook)

    @property
    def hooks(self) -> list[HookBase]:
        return list(self._hooks)

    def request_stop(self) -> None:
        """End training after the current step's `after_step` hooks."""
        self.stop_requested = True

    def train(self, start_iter: int, max_iter: int) -> None:
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        try:
            self.before_train()
            while self.iter < max_iter:
                self.before_step()
                self.run_step()
                self.after_step()
                self.iter += 1
                if self.stop_requested:
                    break
        finally:
            self.after_train()

    def run_step(self) -> None:
        raise NotImplementedError

    def before_train(self):
        for h in self._hooks:
            h.before_train()

    def after_train(self):
        for h in self._hooks:
            h.after_train()

    def before_step(self):
        for h in self._hooks:
            h.before_step()

    def after_step(self):
        for h in self._hooks:
            h.after_step()
