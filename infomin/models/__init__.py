"""Networks: torchvision ResNet encoders, projection/jigsaw heads, EMA, shuffle-BN, CMC streams."""
from infomin.models.cmc import TwoStreamEncoder, TwoStreamHead
from infomin.models.ema import ema_copy, momentum_update
from infomin.models.encoders import ARCHS, build_encoder, feature_dim
from infomin.models.heads import HEADS, JigsawHead, L2Norm, build_head
from infomin.models.shuffle_bn import shuffled_forward

__all__ = [
    "ARCHS", "HEADS", "JigsawHead", "L2Norm", "TwoStreamEncoder", "TwoStreamHead",
    "build_encoder", "build_head", "ema_copy", "feature_dim", "momentum_update", "shuffled_forward",
]
