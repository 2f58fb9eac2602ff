"""How many DataLoader worker processes this machine can use, for every tool that sets a number.

More workers than the cores this process may run on only oversubscribe them (and torch warns
about it on every loader); a setting above that is capped, and said once.
"""
from __future__ import annotations

import logging
import os

__all__ = ["available_cpus", "cap_workers"]

logger = logging.getLogger(__name__)
_said: set[tuple[str, int, int]] = set()


def available_cpus() -> int:
    """The cores this process may run on (its affinity mask, e.g. a Slurm or taskset allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cap_workers(num_workers: int, setting: str = "DATA.NUM_WORKERS") -> int:
    """`num_workers` capped at the available cores; logs the cap once per process and value."""
    cpus = available_cpus()
    if num_workers <= cpus:
        return num_workers
    if (setting, num_workers, cpus) not in _said:
        _said.add((setting, num_workers, cpus))
        logger.info("%s %d is more than the %d available CPU cores: using %d loader workers.",
                    setting, num_workers, cpus, cpus)
    return cpus
