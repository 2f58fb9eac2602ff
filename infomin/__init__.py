"""InfoMin contrastive pretraining (Tian et al., NeurIPS 2020) and its transfer to Detectron2.

`infomin` is the method library (pure PyTorch); `infomin.pretrain` is the training engine and
`infomin.detection` the Detectron2 extension.
"""
__version__ = "0.1.0"
