"""Shared pieces of the pretraining-engine tests: tiny generated data and tiny-run options."""
from __future__ import annotations

import contextlib
import os

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "configs", "pretrain", "infomin_R18_tiny.yaml")


def tiny_opts(root, out, *extra) -> list[str]:
    """Options for a seconds-long CPU run of the tiny InfoMin config."""
    return ["DATA.ROOT", str(root), "OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu",
            "KNN.ENABLED", "False", *map(str, extra)]


@contextlib.contextmanager
def one_thread():
    """On a shared 2-core machine torch's default 2 threads spin against each other (30x slower)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
