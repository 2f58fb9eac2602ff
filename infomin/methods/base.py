"""What every method shares: the batch contract and the contrastive loss bookkeeping.

A method is an nn.Module whose `forward(batch)` returns {"loss": scalar with grad, <name>:
detached scalars to log}; `momentum_update()` is called by the engine after each optimizer step.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from infomin.losses import info_nce_from_logits, mix_jigsaw, top1_accuracy
from infomin.models import JigsawHead, TwoStreamEncoder, TwoStreamHead, build_encoder, build_head, feature_dim


class Method(nn.Module):
    """Base class. `inputs` names the batch entries `forward` reads."""

    inputs: tuple[str, ...] = ()

    def momentum_update(self) -> None:
        """No-op for methods without a momentum encoder."""

    def _take(self, batch: dict, key: str) -> torch.Tensor:
        if key not in batch:
            raise KeyError(
                f"{type(self).__name__} needs batch[{key!r}] (it reads {', '.join(self.inputs)}); "
                f"the batch has {', '.join(map(str, batch)) or 'no entries'}"
            )
        return batch[key]


class ContrastiveMethod(Method):
    """Query encoder + projection head (+ jigsaw head) and the loss over (query, key) stream pairs.

    RGB methods have one embedding stream. CMC has two (L/Y and ab/DbDr): the main terms are
    cross-modal (L queries against ab keys and back), the jigsaw terms stay within a modality
    (the reference's behaviour), and the terms are summed.
    """

    def __init__(self, *, arch: str, width: float, feat_dim: int, head: str, temperature: float,
                 queue_size: int, jigsaw: bool, beta: float, two_stream: bool):
        super().__init__()
        self.feat_dim, self.temperature, self.queue_size = feat_dim, temperature, queue_size
        self.jigsaw, self.beta, self.two_stream = jigsaw, beta, two_stream
        if two_stream:
            self.encoder = TwoStreamEncoder(arch, width)
            self.head = TwoStreamHead(head, self.encoder.stream_dim, feat_dim)
            if jigsaw:
                self.jigsaw_head = TwoStreamHead(head, self.encoder.stream_dim, feat_dim, jigsaw=True)
        else:
            self.encoder = build_encoder(arch, width)
            self.head = build_head(head, feature_dim(arch, width), feat_dim)
            if jigsaw:
                self.jigsaw_head = JigsawHead(head, feature_dim(arch, width), feat_dim)
        # (query stream, key/memory stream): cross-modal for CMC
        self.pairs = [(0, 1), (1, 0)] if two_stream else [(0, 0)]
        self.streams = 2 if two_stream else 1

    def embed(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Normalised query embeddings, one [B, feat_dim] tensor per stream."""
        return list(self.head(self.encoder(images)).split(self.feat_dim, dim=1))

    def embed_jigsaw(self, batch: dict) -> list[torch.Tensor]:
        """Jigsaw embeddings per stream from batch['jigsaw'] [B, 9, C, h, w] (a separate BN batch)."""
        tiles = self._take(batch, "jigsaw")
        if tiles.dim() != 5 or tiles.shape[1] != 9:
            raise ValueError(f"batch['jigsaw'] must be [B, 9, C, h, w], got {tuple(tiles.shape)}")
        return list(self.jigsaw_head(self.encoder(tiles.flatten(0, 1))).split(self.feat_dim, dim=1))

    def _loss(self, logits: list[torch.Tensor], logits_jigsaw: list[torch.Tensor]) -> dict:
        main = sum(info_nce_from_logits(lg) for lg in logits)
        out = {
            "loss_contrast": main.detach() / len(logits),
            "acc": torch.stack([top1_accuracy(lg) for lg in logits]).mean(),
        }
        if self.jigsaw:
            jig = sum(info_nce_from_logits(lg) for lg in logits_jigsaw)
            out["loss_jigsaw"] = jig.detach() / len(logits_jigsaw)
            out["acc_jigsaw"] = torch.stack([top1_accuracy(lg) for lg in logits_jigsaw]).mean()
            main = mix_jigsaw(main, jig, self.beta)
        return {"loss": main, **out}
