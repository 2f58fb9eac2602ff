"""Supervised pretraining baseline: the same encoder trained with cross-entropy on labels.

For data where no published supervised weights exist; its `encoder` converts like any other.
"""
from __future__ import annotations

import torch.nn as nn

from infomin.losses import supervised_ce, top1_accuracy
from infomin.methods.base import Method
from infomin.methods.settings import Rule, Setting
from infomin.models import build_encoder, feature_dim


class SupervisedMethod(Method):
    FROM_DATA = (Setting("num_classes", None, Rule("an int >= 2", lambda n: isinstance(n, int) and n >= 2),
                         "the number of labels"),)
    inputs = ("view1", "label")

    def __init__(self, *, arch: str, width: float, num_classes: int):
        super().__init__()
        self.encoder = build_encoder(arch, width)
        self.classifier = nn.Linear(feature_dim(arch, width), num_classes)

    def forward(self, batch: dict) -> dict:
        logits = self.classifier(self.encoder(self._take(batch, "view1")))
        labels = self._take(batch, "label")
        if labels.min() < 0 or labels.max() >= self.classifier.out_features:
            raise ValueError(
                f"labels must lie in [0, {self.classifier.out_features}) (num_classes), "
                f"got {int(labels.min())}..{int(labels.max())}"
            )
        return {"loss": supervised_ce(logits, labels), "acc": top1_accuracy(logits, labels)}
