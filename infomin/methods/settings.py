"""A method's settings, declared once on its class: name, default, rule, meaning.

`build_method` validates against them, `METHOD_DEFAULTS` fills them from the registry preset, and
the pretraining config offers each one as `MODEL.<NAME>` (upper-cased), so a new setting is one
`Setting(...)` line on the class that uses it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection

# Facts about the training data that the engine passes to every method; a class lists the ones
# it needs in FROM_DATA (a memory bank its size, a classifier the number of classes). The batch
# per process is optional: settings whose value is "auto" are resolved from it (Method.resolve_auto).
DATA_FACTS = ("num_classes", "dataset_size", "batch_per_process")


@dataclass(frozen=True)
class Rule:
    """What a valid value is, as the error message says it, and the test for it."""

    must: str
    ok: Callable[[Any], bool]

    def problem(self, name: str, value: Any) -> str | None:
        return None if self.ok(value) else f"{name} must be {self.must}, got {value!r}"


@dataclass(frozen=True)
class OneOf(Rule):
    """A value from a fixed list; the error lists the choices."""

    def problem(self, name: str, value: Any) -> str | None:
        return None if self.ok(value) else f"unknown {name} {value!r}; choose one of: {self.must}"


def one_of(choices: Collection[str]) -> OneOf:
    choices = tuple(choices)
    return OneOf(", ".join(choices), lambda v: isinstance(v, str) and v in choices)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float))


def in_range(lo: float, hi: float, *, hi_open: bool = False, note: str = "") -> Rule:
    must = f"a number in [{lo}, {hi}{')' if hi_open else ']'}" + (f" ({note})" if note else "")
    return Rule(must, lambda v: _number(v) and lo <= v and (v < hi if hi_open else v <= hi))


POSITIVE_INT = Rule("a positive int", lambda v: isinstance(v, int) and v >= 1)
POSITIVE_NUMBER = Rule("a positive number", lambda v: _number(v) and v > 0)
UNIT_INTERVAL = in_range(0, 1)
BOOL = Rule("True or False", lambda v: v in (True, False))


@dataclass(frozen=True)
class Setting:
    """One keyword a method's constructor takes. `default` is used where the method's registry
    preset does not name the setting; `help` says what it does (docs, config)."""

    name: str
    default: Any
    rule: Rule
    help: str

    def __post_init__(self):
        if not (self.name.isidentifier() and self.name == self.name.lower()):
            raise ValueError(
                f"setting name {self.name!r} must be a lower-case identifier (it becomes MODEL.<NAME>)"
            )

    def problem(self, value: Any) -> str | None:
        return self.rule.problem(self.name, value)
