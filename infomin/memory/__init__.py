"""Negative memories: MoCo's queue and the InsDis/PIRL/CMC memory bank."""
from infomin.memory.bank import MemoryBank
from infomin.memory.queue import Queue

__all__ = ["MemoryBank", "Queue"]
