"""SplitBatchNorm2d against nn.BatchNorm2d run on each group separately (the oracle)."""
import copy

import pytest
import torch
import torch.nn as nn

from infomin.methods import build_method
from infomin.models import SplitBatchNorm2d, build_encoder, shuffled_forward, split_batchnorm


def _groups(x, splits):
    return [x[j::splits] for j in range(splits)]


def test_training_output_and_running_stats_match_per_group_batchnorm():
    torch.manual_seed(0)
    x = torch.randn(12, 3, 5, 5) * 3 + 1
    split = SplitBatchNorm2d(3, splits=4, momentum=0.3)
    with torch.no_grad():
        split.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        split.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    out = split(x)
    oracles = []
    for j, xj in enumerate(_groups(x, 4)):
        bn = nn.BatchNorm2d(3, momentum=0.3)
        bn.load_state_dict({k: v for k, v in split.state_dict().items() if k != "num_batches_tracked"},
                           strict=False)
        bn.running_mean.zero_()
        bn.running_var.fill_(1)
        assert torch.allclose(out[j::4], bn(xj), atol=1e-5)
        oracles.append(bn)
    assert torch.allclose(split.running_mean, torch.stack([b.running_mean for b in oracles]).mean(0), atol=1e-6)
    assert torch.allclose(split.running_var, torch.stack([b.running_var for b in oracles]).mean(0), atol=1e-6)
    assert int(split.num_batches_tracked) == 1


def test_gradients_reach_the_shared_affine_parameters():
    split = SplitBatchNorm2d(2, splits=2)
    x = torch.randn(4, 2, 3, 3, requires_grad=True)
    (split(x) * torch.arange(4.0).view(4, 1, 1, 1)).sum().backward()
    assert split.weight.grad is not None and split.weight.grad.abs().sum() > 0
    assert x.grad is not None


def test_eval_mode_is_plain_batchnorm_and_bad_batches_are_refused():
    split = SplitBatchNorm2d(3, splits=4)
    with torch.no_grad():
        split.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
        split.running_var.copy_(torch.tensor([4.0, 5.0, 6.0]))
    plain = nn.BatchNorm2d(3)
    plain.load_state_dict(split.state_dict())
    x = torch.randn(5, 3, 2, 2)
    split.eval(), plain.eval()
    assert torch.equal(split(x), plain(x))  # any batch size in eval
    split.train()
    with pytest.raises(ValueError, match="MODEL.BN_SPLITS=4"):
        split(x)


def test_split_batchnorm_keeps_state_dict_and_parameters_of_a_resnet():
    torch.manual_seed(0)
    net = build_encoder("resnet18", 1)
    reference = copy.deepcopy(net)
    params = {id(p) for p in net.parameters()}
    split_batchnorm(net, 4)
    assert {id(p) for p in net.parameters()} == params  # the optimizer's tensors are unchanged
    kinds = [type(m) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert kinds and all(k is SplitBatchNorm2d for k in kinds)
    assert net.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(2, 3, 32, 32)
    net.eval(), reference.eval()
    assert torch.allclose(net(x), reference(x), atol=1e-6)
    with pytest.raises(ValueError, match="positive int"):
        split_batchnorm(net, 0)


def test_one_process_shuffle_puts_keys_back_in_order():
    """With split BN the key encoder sees a permuted batch; the keys must come back aligned."""
    x = torch.arange(8.0).view(8, 1)
    keys, keys_all = shuffled_forward(lambda t: t * 10, x)
    assert torch.equal(keys, x * 10) and torch.equal(keys_all, keys)


def test_infomin_with_bn_splits_trains_and_builds_split_encoders():
    torch.manual_seed(0)
    method = build_method("InfoMin", arch="resnet18", queue_size=16, jigsaw=False, bn_splits=2)
    assert method.settings["bn_splits"] == 2
    for net in (method.encoder, method.encoder_ema):
        assert all(m.splits == 2 for m in net.modules() if isinstance(m, SplitBatchNorm2d))
        assert any(isinstance(m, SplitBatchNorm2d) for m in net.modules())
    out = method({"view1": torch.randn(4, 3, 32, 32), "view2": torch.randn(4, 3, 32, 32)})
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    with pytest.raises(ValueError, match="bn_splits"):
        build_method("InfoMin", arch="resnet18", bn_splits=0)
    with pytest.raises(ValueError, match="does not use bn_splits"):
        build_method("InsDis", arch="resnet18", bn_splits=2, dataset_size=10)
