"""The momentum-queue family: MoCo, MoCo v2, InfoMin (RGB, + jigsaw) and CMC v2 (two streams).

view1 -> online encoder/head = queries; view2 -> momentum encoder/head under shuffle-BN = keys;
negatives = the queue as it was before this step; then the global batch of keys is enqueued.
`bn_splits` > 1 computes both encoders' BatchNorm statistics over that many groups of each
process's batch (infomin.models.split_bn), which gives shuffle-BN its effect on one process.
Its default "auto" gives groups of 32 images, the reference's BatchNorm batch (32 per GPU), for
any number of processes (infomin.models.resolve_bn_splits).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from infomin import distributed as D
from infomin.losses import contrastive_logits
from infomin.memory import Queue
from infomin.methods.base import ContrastiveMethod
from infomin.methods.settings import BOOL, Rule, Setting, in_range
from infomin.models import ema_copy, momentum_update, resolve_bn_splits, shuffled_forward, split_batchnorm

BN_SPLITS = Rule("a positive int or 'auto'", lambda v: v == "auto" or (
    isinstance(v, int) and not isinstance(v, bool) and v >= 1))


class MoCoMethod(ContrastiveMethod):
    SETTINGS = ContrastiveMethod.SETTINGS + (
        Setting("momentum", 0.999, in_range(0, 1, note="EMA"),
                "EMA coefficient of the momentum (key) encoder"),
        Setting("shuffle_bn", True, BOOL, "shuffle the key batch across all ranks for BatchNorm"),
        Setting("bn_splits", "auto", BN_SPLITS,
                "BatchNorm statistics over this many groups of each process's batch (1 = the whole "
                "batch; auto = groups of 32 images, as the reference's 32 per GPU); > 1 gives "
                "shuffle-BN its effect on one process (infomin.models.split_bn)"),
    )

    @classmethod
    def resolve_auto(cls, settings: dict, facts: dict) -> None:
        settings["bn_splits"] = resolve_bn_splits(settings["bn_splits"], facts.get("batch_per_process"))

    def __init__(self, *, momentum: float, shuffle_bn: bool, bn_splits: int, **settings):
        super().__init__(**settings)
        self.momentum, self.shuffle_bn = momentum, bool(shuffle_bn)
        split_batchnorm(self.encoder, bn_splits)
        self.encoder_ema = ema_copy(self.encoder)
        self.head_ema = ema_copy(self.head)
        if self.two_stream:
            self.memory = nn.ModuleDict(
                {"l": Queue(self.queue_size, self.feat_dim), "ab": Queue(self.queue_size, self.feat_dim)}
            )
        else:
            self.memory = Queue(self.queue_size, self.feat_dim)
        self.inputs = ("view1", "view2") + (("jigsaw",) if self.jigsaw else ())

    def _queues(self) -> list[Queue]:
        return [self.memory["l"], self.memory["ab"]] if self.two_stream else [self.memory]

    def _encode_keys(self, images: torch.Tensor) -> torch.Tensor:
        return self.head_ema(self.encoder_ema(images))

    @torch.no_grad()
    def keys(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Keys of this rank's images and of the global batch (rank order), one per stream."""
        if self.shuffle_bn:
            k, k_all = shuffled_forward(self._encode_keys, images)
        else:
            k = self._encode_keys(images)
            k_all = D.all_gather_nograd(k)
        return list(k.split(self.feat_dim, 1)), list(k_all.split(self.feat_dim, 1))

    def forward(self, batch: dict) -> dict:
        q = self.embed(self._take(batch, "view1"))
        k, k_all = self.keys(self._take(batch, "view2"))
        queues = [queue.negatives() for queue in self._queues()]
        t = self.temperature
        logits = [contrastive_logits(q[i], k[j], queues[j], t) for i, j in self.pairs]
        logits_jig = []
        if self.jigsaw:
            q_jig = self.embed_jigsaw(batch)
            logits_jig = [contrastive_logits(q_jig[s], k[s], queues[s], t) for s in range(self.streams)]
        out = self._loss(logits, logits_jig)
        if self.training:  # evaluation forwards leave the queue untouched
            for queue, keys in zip(self._queues(), k_all):
                queue.enqueue(keys)
        return out

    @torch.no_grad()
    def momentum_update(self) -> None:
        """encoder_ema/head_ema <- momentum * ema + (1 - momentum) * online (parameters only)."""
        momentum_update(self.encoder, self.encoder_ema, self.momentum)
        momentum_update(self.head, self.head_ema, self.momentum)
