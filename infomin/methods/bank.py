"""The memory-bank family: InsDis, PIRL (+ jigsaw) and CMC (two streams).

One view per image; its positive is its own bank entry, negatives are random bank entries, and
the bank entries of the global batch move towards the new features after the loss.
"""
from __future__ import annotations

import torch.nn as nn

from infomin import distributed as D
from infomin.losses import contrastive_logits
from infomin.memory import MemoryBank
from infomin.methods.base import ContrastiveMethod
from infomin.methods.settings import POSITIVE_INT, Setting, in_range


class MemoryBankMethod(ContrastiveMethod):
    SETTINGS = ContrastiveMethod.SETTINGS + (
        Setting("momentum", 0.5, in_range(0, 1, hi_open=True, note="memory bank"),
                "how much of a bank entry is kept when its image's new feature arrives"),
    )
    FROM_DATA = (Setting("dataset_size", None, POSITIVE_INT,
                         "len(train_set): the memory bank keeps one entry per training image"),)

    def __init__(self, *, momentum: float, dataset_size: int, **settings):
        super().__init__(**settings)
        make = lambda: MemoryBank(dataset_size, self.feat_dim, momentum)  # noqa: E731
        self.memory = nn.ModuleDict({"l": make(), "ab": make()}) if self.two_stream else make()
        self.inputs = ("view1", "index") + (("jigsaw",) if self.jigsaw else ())

    def _banks(self) -> list[MemoryBank]:
        return [self.memory["l"], self.memory["ab"]] if self.two_stream else [self.memory]

    def forward(self, batch: dict) -> dict:
        index = self._take(batch, "index")
        f = self.embed(self._take(batch, "view1"))
        # rows[s]: [B, 1 + K, d]; column 0 = the image's own entry in bank s
        rows = [bank.sample(index, self.queue_size) for bank in self._banks()]
        t = self.temperature
        logits = [contrastive_logits(f[i], rows[j][:, 0], rows[j][:, 1:], t) for i, j in self.pairs]
        logits_jig = []
        if self.jigsaw:
            f_jig = self.embed_jigsaw(batch)
            logits_jig = [
                contrastive_logits(f_jig[s], rows[s][:, 0], rows[s][:, 1:], t) for s in range(self.streams)
            ]
        out = self._loss(logits, logits_jig)
        if self.training:  # evaluation forwards leave the bank untouched
            sizes = D.gather_sizes(index.shape[0], index.device)
            all_index = D.all_gather_nograd(index, sizes)
            for bank, feats in zip(self._banks(), f):
                bank.update(D.all_gather_nograd(feats, sizes), all_index)
        return out
