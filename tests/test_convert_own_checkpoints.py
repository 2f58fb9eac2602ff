"""Checkpoints of this project's own methods (infomin.methods) convert with every tensor accounted for.

The payload follows docs/pretrain-checkpoint.md; the oracle is the method's own encoder
(`encoder` / `encoder_ema`, torchvision ResNets) read back from the written pickle.
"""
import pickle

import numpy as np
import pytest
import torch

from infomin.convert import ConversionError, convert_checkpoint
from infomin.methods import build_method


def save_payload(method, name, path):
    torch.save({"format": "infomin.pretrain", "format_version": 1, "arch": "resnet18", "width": 1,
                "method": name, "model": {k: v.detach() for k, v in method.state_dict().items()},
                "model_ema": None, "epoch": 1, "iteration": 10, "config": "MODEL: {}\n"}, path)


def assert_pickle_holds(path, encoder):
    with open(path, "rb") as f:
        model = pickle.load(f)["model"]
    state = encoder.state_dict()
    assert len(model) == len(state)
    np.testing.assert_array_equal(model["stem.conv1.weight"], state["conv1.weight"].numpy())
    np.testing.assert_array_equal(model["res5.1.conv2.norm.running_var"],
                                  state["layer4.1.bn2.running_var"].numpy())


@pytest.mark.parametrize("name,kwargs,drops", [
    ("InfoMin", {"jigsaw": True, "queue_size": 64},
     {"projection head", "jigsaw head", "memory bank / queue", "momentum projection head"}),
    ("InsDis", {"dataset_size": 50}, {"projection head", "memory bank / queue"}),
    ("Supervised", {"num_classes": 10}, {"supervised classifier"}),
])
def test_every_method_tensor_is_converted_or_dropped_for_a_reason(tmp_path, name, kwargs, drops):
    torch.manual_seed(0)
    method = build_method(name, arch="resnet18", **kwargs)
    save_payload(method, name, tmp_path / "ckpt.pth")
    summary = convert_checkpoint(str(tmp_path / "ckpt.pth"), str(tmp_path / "d2.pkl"))
    reasons = {d.reason for d in summary.dropped}
    assert "not part of the backbone" not in reasons
    assert drops <= reasons and summary.arch.name == "resnet18"
    assert not any("says its architecture" in n for n in summary.notes)  # arch field agrees
    assert summary.converted + sum(d.count for d in summary.dropped) == len(method.state_dict())
    assert_pickle_holds(tmp_path / "d2.pkl", method.encoder)
    if hasattr(method, "encoder_ema"):
        with torch.no_grad():  # make the two encoders differ, then convert the momentum one
            for p in method.encoder_ema.parameters():
                p.add_(1.0)
        save_payload(method, name, tmp_path / "ckpt.pth")
        convert_checkpoint(str(tmp_path / "ckpt.pth"), str(tmp_path / "ema.pkl"), ema=True)
        assert_pickle_holds(tmp_path / "ema.pkl", method.encoder_ema)


def test_cmc_method_checkpoint_is_refused(tmp_path):
    method = build_method("CMC", arch="resnet18", dataset_size=50)
    save_payload(method, "CMC", tmp_path / "cmc.pth")
    with pytest.raises(ConversionError, match="CMC two-stream"):
        convert_checkpoint(str(tmp_path / "cmc.pth"), str(tmp_path / "cmc.pkl"))
    assert not (tmp_path / "cmc.pkl").exists()
