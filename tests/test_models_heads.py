import pytest
import torch
import torch.nn.functional as F

from infomin.models import JigsawHead, build_head


def test_linear_and_mlp_heads_match_their_definition():
    x = torch.randn(4, 10)
    linear = build_head("linear", 10, 6)
    assert set(linear.state_dict()) == {"0.weight", "0.bias"}
    assert torch.allclose(linear(x), F.normalize(x @ linear[0].weight.t() + linear[0].bias, dim=1))
    mlp = build_head("mlp", 10, 6)
    assert set(mlp.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    hidden = torch.relu(x @ mlp[0].weight.t() + mlp[0].bias)
    assert torch.allclose(mlp(x), F.normalize(hidden @ mlp[2].weight.t() + mlp[2].bias, dim=1), atol=1e-6)
    with pytest.raises(ValueError, match="unknown head 'bn'"):
        build_head("bn", 10, 6)


def test_jigsaw_head_shuffles_tiles_per_image_then_projects():
    head = JigsawHead("linear", in_dim=5, feat_dim=4)
    assert head.fc2.in_features == 36
    tiles = torch.randn(2 * 9, 5)
    torch.manual_seed(3)
    got = head(tiles)
    torch.manual_seed(3)
    order = torch.argsort(torch.rand(2, 9), dim=1)  # the head's draw
    z = head.fc1(tiles).view(2, 9, 4)
    shuffled = torch.stack([z[b, order[b]] for b in range(2)])
    assert torch.allclose(got, F.normalize(head.fc2(shuffled.flatten(1)), dim=1), atol=1e-6)
    assert torch.allclose(got.norm(dim=1), torch.ones(2))


def test_jigsaw_head_mlp_keys_and_bad_input():
    head = JigsawHead("mlp", in_dim=5, feat_dim=4)
    assert {"fc1.0.weight", "fc1.2.weight", "fc2.weight"} <= set(head.state_dict())
    with pytest.raises(ValueError, match=r"\[B\*9, D\]"):
        head(torch.randn(10, 5))
