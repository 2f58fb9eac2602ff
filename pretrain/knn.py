"""Weighted k-nearest-neighbour accuracy of frozen features (the InstDis/DINO monitor).

Every rank encodes its shard of both splits; the train bank is all-gathered, each rank votes for
its own queries, and the hit counts are summed over ranks. Returns top-1 in percent.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from . import distributed as du

logger = logging.getLogger(__name__)
_reported: set[str] = set()  # the monitor reads the same images every epoch: name each one once


def _unpack(batch):
    if isinstance(batch, dict):
        for entry in batch.get("bad", ()):
            if entry and str(entry) not in _reported:
                _reported.add(str(entry))
                logger.warning("kNN monitor skipped unreadable image(s): %s (said once per run)", entry)
        return batch["image"], batch["label"]
    return batch[0], batch[1]


@torch.no_grad()
def extract_features(encoder, loader, device) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised pooled features and labels of this rank's part of `loader`."""
    feats, labels = [], []
    for batch in loader:
        images, y = _unpack(batch)
        f = encoder(images.to(device, non_blocking=True)).float().flatten(1)
        feats.append(F.normalize(f, dim=1))
        labels.append(y.to(device))
    if not feats:
        return torch.empty(0, 0, device=device), torch.empty(0, dtype=torch.long, device=device)
    return torch.cat(feats), torch.cat(labels).long()


def _gather_uneven(t: torch.Tensor, comm_device) -> torch.Tensor:
    if not du.is_initialized():
        return t
    sizes = du.all_gather_object(t.shape[0])
    dim = max(du.all_gather_object(t.shape[1] if t.dim() > 1 else 0))
    pad = t.new_zeros((max(sizes),) + ((dim,) if t.dim() > 1 else ()))
    if t.shape[0]:
        pad[: t.shape[0]] = t
    parts = du.all_gather_cat(pad.to(comm_device)).to(t.device)
    chunks = parts.split(max(sizes))
    return torch.cat([c[:n] for c, n in zip(chunks, sizes)])


def knn_predict(query: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = 200, temperature: float = 0.07, chunk: int = 1024) -> torch.Tensor:
    """Class scores: sum over the k most similar bank entries of exp(cos / T), per class."""
    k = min(k, bank.shape[0])
    scores = []
    for q in query.split(chunk):
        sim, idx = (q @ bank.T).topk(k, dim=1)
        weights = (sim / temperature).exp()
        one_hot = F.one_hot(bank_labels[idx], num_classes).to(weights.dtype)
        scores.append((one_hot * weights.unsqueeze(-1)).sum(1))
    return torch.cat(scores) if scores else query.new_zeros(0, num_classes)


@torch.no_grad()
def knn_accuracy(encoder, train_loader, val_loader, k: int = 200, temperature: float = 0.07,
                 device=None) -> float:
    """Top-1 (percent) of a weighted kNN classifier on `encoder`'s features.

    `encoder` maps images [B,C,H,W] to features [B,D]; loaders yield dicts with "image" and
    "label" (or (image, label) tuples). The encoder is put in eval mode and restored after.
    """
    if device is None:
        device = next(encoder.parameters()).device
    device = torch.device(device)
    comm = du.backend_device(device)
    was_training = encoder.training
    encoder.eval()
    try:
        bank, bank_labels = extract_features(encoder, train_loader, device)
        query, query_labels = extract_features(encoder, val_loader, device)
    finally:
        encoder.train(was_training)
    bank = _gather_uneven(bank, comm)
    bank_labels = _gather_uneven(bank_labels, comm)
    if bank.shape[0] == 0:
        raise ValueError("kNN monitor: the train split gave no features (empty loader).")
    num_classes = int(max(bank_labels.max().item(), query_labels.max().item() if len(query_labels) else 0)) + 1
    num_classes = max(du.all_gather_object(num_classes))
    pred = knn_predict(query, bank, bank_labels, num_classes, k, temperature).argmax(1) if len(query) else query_labels
    counts = torch.tensor([(pred == query_labels).sum().item(), len(query_labels)], dtype=torch.float64, device=comm)
    du.all_reduce_sum(counts)
    if counts[1] == 0:
        raise ValueError("kNN monitor: the validation split gave no images.")
    return float(100.0 * counts[0] / counts[1])
