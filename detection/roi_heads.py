"""`Res5ROIHeadsExtraNorm`: the C4 box head of the MoCo/InfoMin transfer protocol.

Self-supervised backbones are fine-tuned with BatchNorm everywhere; the C4 protocol adds one more
norm layer after the res5 stage that lives in the ROI head (MoCo, "extra BN layer following the
res5 stage"). Configs name it as ``MODEL.ROI_HEADS.NAME: Res5ROIHeadsExtraNorm``, so it must be in
Detectron2's ROI_HEADS registry before any such config is built: importing ``infomin.detection``
registers it.

It is built through the head's public, ``@configurable`` constructor (no override of
Detectron2's private ``_build_res5_block``), so it also works without a config::

    Res5ROIHeadsExtraNorm(extra_norm="SyncBN", in_features=..., pooler=..., res5=..., ...)
"""
from detectron2.config import configurable
from detectron2.layers import get_norm
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads

__all__ = ["Res5ROIHeadsExtraNorm"]


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeadsExtraNorm(Res5ROIHeads):
    """`Res5ROIHeads` whose res5 stage ends with a norm layer (``res5.norm``).

    The norm's type is ``MODEL.RESNETS.NORM`` (the backbone's norm); its parameters are not in any
    pretrained backbone, so loading one reports ``roi_heads.res5.norm.*`` as missing (expected).
    """

    @configurable
    def __init__(self, *, extra_norm: str, **kwargs):
        """
        Args:
            extra_norm: a Detectron2 norm name ("BN", "SyncBN", "naiveSyncBN", "GN", ...) or a
                callable taking a channel count, for the layer appended to ``res5``.
            kwargs: everything `Res5ROIHeads` takes (in_features, pooler, res5, box_predictor, ...).
        """
        super().__init__(**kwargs)
        channels = self.res5[-1].out_channels
        norm = get_norm(extra_norm, channels)
        if norm is None:
            raise ValueError(
                "Res5ROIHeadsExtraNorm needs a norm layer after res5, but the norm given "
                f"(MODEL.RESNETS.NORM) is {extra_norm!r}. Set MODEL.RESNETS.NORM to e.g. 'SyncBN' "
                "or 'BN', or use MODEL.ROI_HEADS.NAME 'Res5ROIHeads' for no extra norm."
            )
        self.res5.add_module("norm", norm)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["extra_norm"] = cfg.MODEL.RESNETS.NORM
        return ret
