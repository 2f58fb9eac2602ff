"""What every method shares: the contract the engine relies on, and the contrastive bookkeeping.

A registered method (infomin.methods.registry) is a `Method` subclass that
- declares its settings once, in `SETTINGS` (a tuple of `Setting`; extend the parent's), and the
  data facts it needs in `FROM_DATA` (`num_classes`, `dataset_size`); its constructor takes
  exactly those as keywords, plus any fixed arguments of its registry entry;
- `forward(batch)`: batch is a dict of tensors (`view1`, `view2`, `jigsaw`, `index`, `label`,
  as its views preset yields) -> {"loss": scalar with grad, <name>: detached scalars to log};
- `momentum_update()`: called after each optimizer step (a no-op here);
- `encoder`: the backbone the kNN monitor, linear evaluation and the converter use;
- `settings` (set by `build_method`): the resolved settings, stored with checkpoints.
Cross-setting rules go in `check_settings`; settings whose value depends on the data ("auto")
are made concrete in `resolve_auto`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from infomin.losses import info_nce_from_logits, mix_jigsaw, top1_accuracy
from infomin.methods.settings import BOOL, POSITIVE_INT, POSITIVE_NUMBER, UNIT_INTERVAL, Setting, one_of
from infomin.models import (
    ARCHS, HEADS, JigsawHead, TwoStreamEncoder, TwoStreamHead, build_encoder, build_head, feature_dim,
)


class Method(nn.Module):
    """Base class. `inputs` names the batch entries `forward` reads."""

    SETTINGS: tuple[Setting, ...] = (
        Setting("arch", "resnet50", one_of(ARCHS), "torchvision ResNet/ResNeXt/Wide-ResNet name"),
        Setting("width", 1, POSITIVE_NUMBER, "PyContrast width multiplier (2 = R50x2, 0.5 = a CMC stream)"),
    )
    FROM_DATA: tuple[Setting, ...] = ()
    inputs: tuple[str, ...] = ()

    @classmethod
    def check_settings(cls, method: str, settings: dict, defaults: dict) -> None:
        """Rules across settings (each one alone is checked by its `Setting`); raise ValueError."""

    @classmethod
    def resolve_auto(cls, settings: dict, facts: dict) -> None:
        """Replace (in place) settings given as "auto" by the value for these data facts
        (`facts`: the DATA_FACTS the caller passed, e.g. batch_per_process)."""

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

    SETTINGS = Method.SETTINGS + (
        Setting("feat_dim", 128, POSITIVE_INT, "embedding dimension of the projection head"),
        Setting("head", "linear", one_of(HEADS), "projection head: linear (Linear + L2) or mlp"),
        Setting("temperature", 0.07, POSITIVE_NUMBER, "softmax temperature of the contrastive logits"),
        Setting("queue_size", 65536, POSITIVE_INT, "negatives: MoCo queue length / memory-bank draws K"),
        Setting("jigsaw", False, BOOL, "add PIRL's jigsaw branch (needs jigsaw tiles in the batch)"),
        Setting("beta", 0.5, UNIT_INTERVAL, "weight of the jigsaw loss: (1-beta) main + beta jigsaw"),
    )

    @classmethod
    def check_settings(cls, method: str, settings: dict, defaults: dict) -> None:
        if not settings["jigsaw"] and settings["beta"] != defaults["beta"]:
            raise ValueError(
                f"beta={settings['beta']} weights the jigsaw loss; {method} runs with jigsaw=False"
            )

    def __init__(self, *, arch: str, width: float, feat_dim: int, head: str, temperature: float,
                 queue_size: int, jigsaw: bool, beta: float, two_stream: bool = False):
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
