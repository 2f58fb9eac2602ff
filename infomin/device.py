"""The one reading of a device setting (`MODEL.DEVICE`, `DEVICE`, `--device`) for every tool.

`auto` is CUDA when a GPU is visible, else the CPU; `cpu`, `cuda` and `cuda:N` are taken as
given, after checking that CUDA exists when asked for. Anything else is a clear error naming the
setting, instead of a failure deep inside torch.
"""
from __future__ import annotations

import platform

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


def cpu_name() -> str:
    """/proc/cpuinfo's model name (e.g. "AMD EPYC"), else what `platform` knows: benchmarks name
    the CPU beside every figure, since machines of one kind differ 2-3x in speed."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
