"""Contrastive and supervised losses as pure functions."""
from infomin.losses.infonce import (
    contrastive_logits,
    info_nce,
    info_nce_from_logits,
    infomin_loss,
    mix_jigsaw,
    nt_xent,
    nt_xent_logits,
    supervised_ce,
    top1_accuracy,
)

__all__ = [
    "contrastive_logits", "info_nce", "info_nce_from_logits", "infomin_loss", "mix_jigsaw", "nt_xent", "nt_xent_logits",
    "supervised_ce", "top1_accuracy",
]
