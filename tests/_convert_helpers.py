"""Checkpoints in every layout the converter reads, built from one torchvision ResNet.

`save_checkpoint(model, variant, path)` writes `model`'s weights the way that project saves
them (prefixes, heads, queues, extra entries), so any test can get a realistic input file.
In the `*_ema` variants `model` is the momentum encoder and the online encoder holds other
weights, so converting the wrong encoder is detectable.
"""
from __future__ import annotations

import torch
import torchvision

# variant -> (converter format, --ema)
VARIANTS = {
    "infomin": ("infomin", False),
    "infomin_ema": ("infomin", True),
    "pycontrast": ("pycontrast", False),
    "pycontrast_ema": ("pycontrast", True),
    "moco": ("moco", False),
    "moco_ema": ("moco", True),
    "sololearn": ("sololearn", False),
    "sololearn_ema": ("sololearn", True),
    "torchvision": ("torchvision", False),
    "torchvision_ddp": ("torchvision", False),
}


def random_resnet(arch: str = "resnet18", seed: int = 0) -> torch.nn.Module:
    """A torchvision ResNet in eval mode with random weights AND random BN statistics.

    Non-trivial running means/vars make a swapped or dropped BN buffer change the features.
    """
    torch.manual_seed(seed)
    if arch in torchvision.models.list_models(torchvision.models):
        model = torchvision.models.get_model(arch, weights=None)
    else:  # a ResNeXt only PyContrast released (resnext101_32x4d, ...): our torchvision-block builder
        from infomin.models import build_encoder, feature_dim

        model = build_encoder(arch)
        model.fc = torch.nn.Linear(feature_dim(arch), 10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(1000)
    return model.eval()


def torchvision_features(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """layer1..layer4 outputs of a torchvision ResNet, named as Detectron2's res2..res5."""
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        out = {}
        for i in range(1, 5):
            h = getattr(model, f"layer{i}")(h)
            out[f"res{i + 1}"] = h
    return out


def save_checkpoint(model: torch.nn.Module, variant: str, path) -> tuple:
    """Save `model` as `variant` (a key of VARIANTS) at `path`; return (format, ema)."""
    encoder = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    dim = model.fc.in_features
    other = _perturbed(encoder)  # the encoder we must NOT convert
    head = {"0.weight": torch.randn(16, dim), "0.bias": torch.randn(16),
            "2.weight": torch.randn(8, 16), "2.bias": torch.randn(8)}
    fmt, ema = VARIANTS[variant]
    online, momentum = (other, encoder) if ema else (encoder, other)
    if fmt == "infomin":
        state = {**_prefix("encoder.", online),
                 **_prefix("head.", head), **_prefix("jigsaw_head.fc2.", {"weight": torch.randn(8, 72)}),
                 **_prefix("encoder_ema.", momentum), **_prefix("head_ema.", head),
                 "memory.queue": torch.randn(32, 8), "memory.ptr": torch.zeros((), dtype=torch.long)}
        ckpt = {"format": "infomin.pretrain", "format_version": 1, "arch": _arch(model), "width": 1,
                "method": "InfoMin", "model": state, "model_ema": None,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.03, "params": [0, 1]}]},
                "epoch": 3, "iteration": 300, "rng": {"torch": torch.get_rng_state()},
                "config": "METHOD: InfoMin\n"}
    elif fmt == "pycontrast":
        model_state = {**_prefix("module.encoder.", online), **_prefix("module.head.", head),
                       "module.head_jig.fc2.weight": torch.randn(8, 72)}
        ema_state = {**_prefix("encoder.", momentum), **_prefix("head.", head)}
        ckpt = {"model": model_state, "model_ema": ema_state, "contrast": {"memory": torch.randn(32, 8)},
                "optimizer": {"state": {}, "param_groups": []}, "epoch": 200}
    elif fmt == "moco":
        state = {**_prefix("module.encoder_q.", online), **_prefix("module.encoder_k.", momentum),
                 **_prefix("module.encoder_q.fc.", head), **_prefix("module.encoder_k.fc.", head),
                 "module.queue": torch.randn(8, 32), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
        ckpt = {"epoch": 200, "arch": _arch(model), "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}
    elif fmt == "sololearn":
        state = {**_prefix("backbone.", online), **_prefix("momentum_backbone.", momentum),
                 **_prefix("projector.", head), **_prefix("momentum_projector.", head),
                 "classifier.weight": torch.randn(10, dim), "classifier.bias": torch.randn(10),
                 "queue": torch.randn(2, 8, 32)}
        ckpt = {"epoch": 99, "global_step": 1000, "pytorch-lightning_version": "2.2.0", "state_dict": state,
                "optimizer_states": [], "lr_schedulers": []}
    else:  # torchvision: the full classifier state dict, fc included
        full = {k: v.clone() for k, v in model.state_dict().items()}
        ckpt = _prefix("module.", full) if variant == "torchvision_ddp" else full
    torch.save(ckpt, path)
    return fmt, ema


def _prefix(prefix: str, state: dict) -> dict:
    return {prefix + k: v for k, v in state.items()}


def _perturbed(state: dict) -> dict:
    return {k: (v + 1.0 if v.is_floating_point() else v.clone()) for k, v in state.items()}


def _arch(model) -> str:
    blocks = tuple(len(getattr(model, f"layer{i}")) for i in range(1, 5))
    basic = isinstance(model.layer1[0], torchvision.models.resnet.BasicBlock)
    return {(True, (2, 2, 2, 2)): "resnet18", (True, (3, 4, 6, 3)): "resnet34",
            (False, (3, 4, 6, 3)): "resnet50"}.get((basic, blocks), "resnet")
