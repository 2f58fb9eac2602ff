"""Shuffle-BN, the gathers (SimCLR's with gradient too) and the memories across 2 gloo processes
(forked, 127.0.0.1)."""
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from _methods_helpers import free_port, tiny_batch, tiny_kwargs
from infomin import distributed as D
from infomin.methods import build_method
from infomin.models import shuffled_forward

SIZES = (3, 5)  # uneven on purpose: a last batch need not be full


def _rows(rank):
    """Rank r's images; every image is constant and equal to its global row number."""
    start = sum(SIZES[:rank])
    ids = torch.arange(start, start + SIZES[rank], dtype=torch.float32)
    return ids.view(-1, 1, 1, 1).expand(-1, 2, 4, 4).contiguous()


def _check_shuffle_bn(rank):
    x = _rows(rank)
    everyone = torch.cat([_rows(0), _rows(1)])
    # 1. BN in eval mode: shuffling must not change any key
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Flatten()).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_()
        k, k_all = shuffled_forward(net, x)
        assert torch.allclose(k, net(x), atol=1e-6)
        assert torch.allclose(k_all, net(everyone), atol=1e-6)
    # 2. a true permutation of the global batch across ranks, undone on the way back
    seen = []

    def encode(images):
        seen.append(images[:, 0, 0, 0].clone())
        return images.flatten(1) * 2

    torch.manual_seed(1 + rank)  # only rank 0's draw may matter
    k, k_all = shuffled_forward(encode, x)
    assert torch.equal(k, x.flatten(1) * 2) and torch.equal(k_all, everyone.flatten(1) * 2)
    mine = seen[0]
    assert mine.numel() == SIZES[rank]
    together = D.all_gather_nograd(mine)
    assert sorted(together.tolist()) == list(range(sum(SIZES)))  # each image encoded exactly once
    other = set(_rows(1 - rank)[:, 0, 0, 0].tolist())
    assert other & set(mine.tolist()), "no image crossed ranks: the shuffle is not global"


def _check_gathers(rank):
    assert D.gather_sizes(SIZES[rank], torch.device("cpu")) == list(SIZES)


def _same_on_both_ranks(tensor):
    both = D.all_gather_nograd(tensor.unsqueeze(0))
    return torch.equal(both[0], both[1])


def _check_memories(rank):
    for name in ("InfoMin", "InsDis"):
        torch.manual_seed(0)  # same initial weights and memory on both ranks
        method = build_method(name, **tiny_kwargs(name))
        batch = tiny_batch(batch_size=2, seed=10 + rank)
        batch["index"] = torch.tensor([2 * rank, 2 * rank + 1])
        out = method(batch)
        out["loss"].backward()
        if name == "InfoMin":
            assert int(method.memory.ptr) == 4  # the keys of both ranks were enqueued
            assert _same_on_both_ranks(method.memory.queue)
        else:
            assert _same_on_both_ranks(method.memory.bank)
            torch.manual_seed(0)
            initial = build_method(name, **tiny_kwargs(name)).memory.bank
            changed = (method.memory.bank != initial).any(dim=1).nonzero().flatten().tolist()
            assert changed == [0, 1, 2, 3]  # both ranks' images updated everywhere


def _check_gather_with_grad(rank):
    """SimCLR's cross-process negatives: each rank's rows get the gradient of every rank's loss,
    i.e. 2x the gradient of the one-process loss of the global batch (DDP then averages the two)."""
    from infomin.losses import nt_xent

    g = torch.Generator().manual_seed(0)  # the same global batch on both ranks
    z1, z2 = (nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1) for _ in range(2))
    mine = slice(3 * rank, 3 * rank + 3)
    a1, a2 = z1[mine].clone().requires_grad_(), z2[mine].clone().requires_grad_()
    loss = nt_xent(a1, a2, 0.2, all1=D.all_gather_with_grad(a1), all2=D.all_gather_with_grad(a2), offset=3 * rank)
    loss.backward()
    w1, w2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    nt_xent(w1, w2, 0.2).backward()
    assert torch.allclose(a1.grad, 2 * w1.grad[mine], atol=1e-6)
    assert torch.allclose(a2.grad, 2 * w2.grad[mine], atol=1e-6)
    try:
        D.all_gather_with_grad(torch.zeros(SIZES[rank], 2))
    except ValueError as err:
        assert "same number of rows on every rank, got [3, 5]" in str(err)
    else:
        raise AssertionError("uneven rows were gathered")
    # the method itself: the global batch's 2 x 4 embeddings, so 6 negatives per anchor
    torch.manual_seed(0)
    method = build_method("SimCLR", arch="resnet18", width=0.125)
    out = method(tiny_batch(batch_size=2, seed=10 + rank))
    out["loss"].backward()
    assert out["negatives"].item() == 6


def _worker(rank, port):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2, timeout=timedelta(seconds=60))
    try:
        assert D.is_dist() and D.rank() == rank and D.world_size() == 2
        _check_shuffle_bn(rank)
        _check_gathers(rank)
        _check_memories(rank)
        _check_gather_with_grad(rank)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes():
    # fork: the children reuse this process's imports (spawn costs ~10 s of imports each)
    mp.start_processes(_worker, args=(free_port(),), nprocs=2, join=True, start_method="fork")
