"""Networks: torchvision ResNet encoders, projection/jigsaw heads, EMA, shuffle-BN, split BN, CMC streams."""
from infomin.models.cmc import TwoStreamEncoder, TwoStreamHead
from infomin.models.ema import ema_copy, momentum_update
from infomin.models.encoders import ARCHS, build_encoder, feature_dim
from infomin.models.heads import HEADS, JigsawHead, L2Norm, build_head
from infomin.models.shuffle_bn import shuffled_forward
from infomin.models.split_bn import BN_GROUP_SIZE, SplitBatchNorm2d, resolve_bn_splits, split_batchnorm

__all__ = [
    "ARCHS", "BN_GROUP_SIZE", "HEADS", "JigsawHead", "L2Norm", "SplitBatchNorm2d", "TwoStreamEncoder", "TwoStreamHead",
    "build_encoder", "build_head", "ema_copy", "feature_dim", "momentum_update", "shuffled_forward",
    "resolve_bn_splits", "split_batchnorm",
]
