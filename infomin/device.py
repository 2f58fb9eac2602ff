"""The one reading of a device setting (`MODEL.DEVICE`, `DEVICE`, `--device`) for every tool.

`auto` is CUDA when a GPU is visible, else the CPU; `cpu`, `cuda` and `cuda:N` are taken as
given, after checking that CUDA exists when asked for. Anything else is a clear error naming the
setting, instead of a failure deep inside torch.
"""
from __future__ import annotations

import torch

__all__ = ["DeviceUnavailableError", "resolve_device"]


class DeviceUnavailableError(RuntimeError):
    """A device (or a feature of it) was asked for that this machine does not have."""


def resolve_device(name: str | None, setting: str = "MODEL.DEVICE") -> torch.device:
    """`name` as a torch.device (a bare `cuda` keeps no index: the caller picks its GPU)."""
    name = (str(name) if name else "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"{setting} must be auto, cpu, cuda or cuda:N, got {name!r}.")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"{setting} is {name!r} but CUDA is not available on this machine; "
                           f"set {setting} cpu (or auto).")
    return torch.device(name)
