"""Every method trains (finite loss, gradients) and its memory/EMA behave as the reference's."""
import pytest
import torch
import torchvision

from _methods_helpers import tiny_batch, tiny_kwargs
from infomin.losses import info_nce, nt_xent
from infomin.methods import METHOD_DEFAULTS, build_method


@pytest.mark.parametrize("name", list(METHOD_DEFAULTS))
def test_forward_gives_finite_loss_and_gradients(name):
    torch.manual_seed(0)
    method = build_method(name, **tiny_kwargs(name))
    out = method(tiny_batch())
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    assert all(not v.requires_grad and v.dim() == 0 for k, v in out.items() if k != "loss")
    out["loss"].backward()
    grads = [p.grad for p in method.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    method.momentum_update()
    if METHOD_DEFAULTS[name].get("jigsaw"):
        assert out["loss"].item() == pytest.approx(
            0.5 * out["loss_contrast"].item() + 0.5 * out["loss_jigsaw"].item(), rel=1e-5)


def test_encoder_keys_are_torchvision_keys():
    method = build_method("InfoMin", **{**tiny_kwargs("InfoMin"), "width": 1})
    reference = torchvision.models.resnet18(weights=None)
    expected = {f"encoder.{k}" for k in reference.state_dict() if not k.startswith("fc.")}
    keys = set(method.state_dict())
    assert {k for k in keys if k.startswith("encoder.")} == expected
    assert {k.replace("encoder_ema.", "encoder.") for k in keys if k.startswith("encoder_ema.")} == expected
    assert {"memory.queue", "memory.ptr", "head.0.weight", "head.2.weight", "jigsaw_head.fc2.weight"} <= keys


def test_infomin_loss_is_the_reference_mix_and_queue_gets_the_keys():
    torch.manual_seed(0)
    m = build_method("InfoMin", beta=0.25, **tiny_kwargs("InfoMin"))
    batch = tiny_batch()
    queue = m.memory.queue.clone()
    torch.manual_seed(7)
    out = m(batch)
    with torch.no_grad():  # recompute by hand (train-mode BN: batch statistics, so same outputs)
        q = m.head(m.encoder(batch["view1"]))
        k = m.head_ema(m.encoder_ema(batch["view2"]))
        torch.manual_seed(7)
        torch.randperm(len(batch["view2"]))  # the key batch's shuffle draws first (shuffled_forward)
        q_jig = m.jigsaw_head(m.encoder(batch["jigsaw"].flatten(0, 1)))
    expected = 0.75 * info_nce(q, k, queue, 0.15) + 0.25 * info_nce(q_jig, k, queue, 0.15)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert int(m.memory.ptr) == 3
    assert torch.allclose(m.memory.queue[:3], k, atol=1e-6)
    assert torch.equal(m.memory.queue[3:], queue[3:])


def test_simclr_contrasts_each_view_with_the_other_view_of_its_image_in_one_bn_batch():
    torch.manual_seed(0)
    m = build_method("SimCLR", **tiny_kwargs("SimCLR"))
    assert not hasattr(m, "encoder_ema") and not hasattr(m, "memory")
    batch = tiny_batch(batch_size=4)
    out = m(batch)
    with torch.no_grad():  # both views in one forward: BatchNorm statistics over all 8 images
        z = m.head(m.encoder(torch.cat([batch["view1"], batch["view2"]])))
        apart = m.head(m.encoder(batch["view1"]))
    assert out["loss"].item() == pytest.approx(nt_xent(z[:4], z[4:], 0.1).item(), rel=1e-5)
    assert not torch.allclose(apart, z[:4], atol=1e-4)  # so the line above checks the joint batch
    assert out["negatives"].item() == 6 and out["loss_contrast"].item() == pytest.approx(out["loss"].item())


def test_cmcv2_contrasts_across_streams_with_the_other_streams_queue():
    torch.manual_seed(0)
    m = build_method("CMCv2", **tiny_kwargs("CMCv2"))
    batch = tiny_batch()
    q_l, q_ab = m.memory["l"].queue.clone(), m.memory["ab"].queue.clone()
    out = m(batch)
    with torch.no_grad():
        q = m.head(m.encoder(batch["view1"])).split(8, 1)
        k = m.head_ema(m.encoder_ema(batch["view2"])).split(8, 1)
    expected = info_nce(q[0], k[1], q_ab, 0.2) + info_nce(q[1], k[0], q_l, 0.2)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(m.memory["l"].queue[:3], k[0], atol=1e-6)
    assert torch.allclose(m.memory["ab"].queue[:3], k[1], atol=1e-6)


def test_momentum_update_moves_the_ema_towards_the_online_encoder():
    m = build_method("MoCov2", momentum=0.9, **tiny_kwargs("MoCov2"))
    assert torch.equal(m.encoder_ema.conv1.weight, m.encoder.conv1.weight)  # starts as a copy
    with torch.no_grad():
        m.encoder.conv1.weight.add_(1.0)
        m.head[2].bias.add_(1.0)
    before = m.encoder_ema.conv1.weight.clone(), m.head_ema[2].bias.clone()
    m.momentum_update()
    assert torch.allclose(m.encoder_ema.conv1.weight, 0.9 * before[0] + 0.1 * m.encoder.conv1.weight)
    assert torch.allclose(m.head_ema[2].bias, 0.9 * before[1] + 0.1 * m.head[2].bias)


def test_bank_method_updates_the_entries_of_the_batch():
    torch.manual_seed(0)
    m = build_method("InsDis", **tiny_kwargs("InsDis"))
    batch = tiny_batch()
    old = m.memory.bank.clone()
    m(batch)
    with torch.no_grad():
        f = m.head(m.encoder(batch["view1"]))
    idx = batch["index"]
    assert torch.allclose(m.memory.bank[idx], torch.nn.functional.normalize(0.5 * old[idx] + 0.5 * f), atol=1e-6)
    others = torch.ones(12, dtype=torch.bool)
    others[idx] = False
    assert torch.equal(m.memory.bank[others], old[others])


def test_eval_mode_leaves_memory_alone_and_autocast_keeps_fp32_loss():
    m = build_method("MoCo", **tiny_kwargs("MoCo")).eval()
    queue = m.memory.queue.clone()
    m(tiny_batch())
    assert torch.equal(m.memory.queue, queue) and int(m.memory.ptr) == 0
    m.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(tiny_batch())
    assert out["loss"].dtype == torch.float32 and m.memory.queue.dtype == torch.float32
    assert int(m.memory.ptr) == 3


def test_missing_batch_entry_names_what_is_needed():
    m = build_method("PIRL", **tiny_kwargs("PIRL"))
    batch = tiny_batch()
    del batch["jigsaw"]
    with pytest.raises(KeyError, match="needs batch\\['jigsaw'\\]"):
        m(batch)
    assert m.inputs == ("view1", "index", "jigsaw")


def test_state_dict_round_trip_resumes_the_method_exactly():
    torch.manual_seed(0)
    m = build_method("InfoMin", **tiny_kwargs("InfoMin"))
    m(tiny_batch(seed=1))["loss"].backward()
    m.momentum_update()
    resumed = build_method("InfoMin", **tiny_kwargs("InfoMin"))
    resumed.load_state_dict(m.state_dict())
    assert int(resumed.memory.ptr) == 3
    batch = tiny_batch(seed=2)
    torch.manual_seed(5)
    expected = m(batch)
    torch.manual_seed(5)
    got = resumed(batch)
    assert got["loss"].item() == pytest.approx(expected["loss"].item(), rel=1e-6)
    assert torch.equal(resumed.memory.queue, m.memory.queue) and int(resumed.memory.ptr) == 6
