"""Tiny settings and batches shared by the methods team's tests (fast on 2 CPU cores)."""
import socket


import torch

TINY = {"arch": "resnet18", "width": 0.125, "feat_dim": 8, "queue_size": 16}


def tiny_kwargs(name: str) -> dict:
    if name == "Supervised":
        return {"arch": "resnet18", "width": 0.125, "num_classes": 3, "dataset_size": 12}
    if name == "SimCLR":  # in-batch negatives: no queue
        return {**{k: v for k, v in TINY.items() if k != "queue_size"}, "dataset_size": 12, "num_classes": 3}
    return {**TINY, "dataset_size": 12, "num_classes": 3}


def tiny_batch(batch_size: int = 3, size: int = 32, tile: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "view1": torch.randn(batch_size, 3, size, size, generator=g),
        "view2": torch.randn(batch_size, 3, size, size, generator=g),
        "jigsaw": torch.randn(batch_size, 9, 3, tile, tile, generator=g),
        "index": torch.randperm(12, generator=g)[:batch_size],
        "label": torch.randint(3, (batch_size,), generator=g),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
