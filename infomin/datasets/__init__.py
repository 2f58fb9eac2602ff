"""Datasets the project generates itself (no downloads): see `infomin.datasets.builtin`."""
from .builtin import CLASSES, BuiltinData, generate

__all__ = ["CLASSES", "BuiltinData", "generate"]
