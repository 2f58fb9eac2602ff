import pytest
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import ResNet

from infomin.models import TwoStreamEncoder, build_encoder, feature_dim
from infomin.models.encoders import ARCHS, _rescale


def _torchvision_trunk(arch):
    model = torchvision.models.get_model(arch, weights=None)
    model.fc = nn.Identity()
    return model.eval()


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_standard_width_equals_torchvision(arch):
    ours = build_encoder(arch).eval()
    reference = _torchvision_trunk(arch)
    ours.load_state_dict(reference.state_dict(), strict=True)  # identical key names and shapes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), atol=1e-5)
    assert ours(x).shape == (2, feature_dim(arch))


def test_scaled_builder_at_width_one_rebuilds_torchvision_resnext():
    # the code path that scales widths, run at width 1, must rebuild torchvision's network exactly
    block, layers, groups, wpg = ARCHS["resnext50_32x4d"]
    rebuilt = ResNet(block, layers, groups=groups, width_per_group=wpg)
    _rescale(rebuilt, block, layers, groups, wpg, 1)
    rebuilt.fc = nn.Identity()
    reference = _torchvision_trunk("resnext50_32x4d")
    rebuilt.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), reference(x), atol=1e-5)


def test_width_multiplier_scales_every_stage_with_torchvision_keys():
    half = build_encoder("resnet50", width=0.5)  # CMC's stream; R50x2/x4 use the same rule
    reference_keys = set(_torchvision_trunk("resnet50").state_dict())
    assert set(half.state_dict()) == reference_keys
    assert half.conv1.out_channels == 64  # stem never narrower than 64 (reference rule)
    assert half.layer1[0].conv1.weight.shape == (32, 64, 1, 1)
    assert half.layer4[2].conv3.weight.shape == (1024, 256, 1, 1)
    assert feature_dim("resnet50", 0.5) == 1024 and feature_dim("resnet50", 2) == 4096
    wide = build_encoder("resnet18", width=2)
    assert wide.conv1.out_channels == 128 and wide.layer4[1].conv2.weight.shape == (1024, 1024, 3, 3)


def test_two_stream_encoder_splits_luminance_and_chroma():
    encoder = TwoStreamEncoder("resnet18", width=0.25).eval()
    assert encoder.l.conv1.in_channels == 1 and encoder.ab.conv1.in_channels == 2
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = encoder(x)
        assert out.shape == (2, 2 * feature_dim("resnet18", 0.125))
        assert torch.equal(out[:, : encoder.stream_dim], encoder.l(x[:, :1]))
        assert torch.equal(out[:, encoder.stream_dim :], encoder.ab(x[:, 1:]))
    assert any(k.startswith("l.conv1") for k in encoder.state_dict())


def test_bad_arch_and_width_are_refused():
    with pytest.raises(ValueError, match="unknown arch 'resnet51'.*resnet50"):
        build_encoder("resnet51")
    with pytest.raises(ValueError, match="width"):
        build_encoder("resnet18", width=0)
