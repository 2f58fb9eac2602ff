"""SimCLR (Chen et al., 2020): in-batch negatives, both views through the one online encoder.

No queue, no momentum encoder: every other embedding of the global batch (2N - 2 of them) is a
negative, and the gradient reaches positives and negatives alike. Why the project has it: within
the thousand-odd steps a CPU affords, it learned the built-in shapes faster than the
momentum-queue methods (docs/views-tools.md, "Why the CPU sweep uses SimCLR, grey views and
flat-coloured shapes"), so the CPU-sized view sweep pretrains with it. Both views pass through
the encoder as one batch, so BatchNorm sees 2B images, as SimCLR's own single-device code does.
"""
from __future__ import annotations

import torch

from infomin import distributed as D
from infomin.losses import info_nce_from_logits, nt_xent_logits, top1_accuracy
from infomin.methods.base import Method
from infomin.methods.settings import POSITIVE_INT, POSITIVE_NUMBER, Setting, one_of
from infomin.models import HEADS, build_encoder, build_head, feature_dim


class SimCLRMethod(Method):
    SETTINGS = Method.SETTINGS + (
        Setting("feat_dim", 128, POSITIVE_INT, "embedding dimension of the projection head"),
        Setting("head", "mlp", one_of(HEADS), "projection head: linear (Linear + L2) or mlp"),
        Setting("temperature", 0.1, POSITIVE_NUMBER, "softmax temperature of the NT-Xent logits"),
    )
    inputs = ("view1", "view2")

    def __init__(self, *, arch: str, width: float, feat_dim: int, head: str, temperature: float):
        super().__init__()
        self.feat_dim, self.temperature = feat_dim, temperature
        self.encoder = build_encoder(arch, width)
        self.head = build_head(head, feature_dim(arch, width), feat_dim)

    def forward(self, batch: dict) -> dict:
        v1, v2 = self._take(batch, "view1"), self._take(batch, "view2")
        if v1.shape != v2.shape:
            raise ValueError(f"SimCLR needs two views of the same shape, got {tuple(v1.shape)} and {tuple(v2.shape)}")
        z1, z2 = self.head(self.encoder(torch.cat([v1, v2]))).chunk(2)
        # one gather per step: both views side by side along the feature axis
        all1, all2 = D.all_gather_with_grad(torch.cat([z1, z2], dim=1)).chunk(2, dim=1)
        logits, target = nt_xent_logits(z1, z2, self.temperature, all1=all1, all2=all2,
                                        offset=D.rank() * z1.shape[0])
        loss = info_nce_from_logits(logits, target)
        return {"loss": loss, "loss_contrast": loss.detach(), "acc": top1_accuracy(logits, target),
                # negatives per anchor, so I_NCE = log(negatives + 1) - loss reads off the log
                "negatives": logits.new_tensor(float(logits.shape[1] - 2))}
