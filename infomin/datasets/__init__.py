"""Datasets the project generates itself (no downloads): see `infomin.datasets.builtin`."""
from .builtin import CLASSES, BuiltinData, builtin_imagefolder, generate, write_imagefolder

__all__ = ["CLASSES", "BuiltinData", "builtin_imagefolder", "generate", "write_imagefolder"]
