"""The engine under 2 processes is data parallelism, not two independent replicas.

Two gloo processes (forked, CPU) run the real `run_pretraining`; each saves its own method state.
(a) After 3 steps both ranks hold the same weights, EMA weights and queue: in the setting of (b),
    and in the tiny InfoMin recipe itself (shuffle-BN across ranks, jigsaw branch).
(b) The 2-process run with 8 images per process ("2x8") ends where a 1-process run with the same
    global batch of 16 images ("1x16") ends, up to float rounding.

Why (b) can hold exactly (up to rounding), and what had to be switched off for it:
- Data: 16 images and a global batch of 16, so every step's global batch is the whole epoch's
  permutation `order`; in 2x8 rank r holds order[r::2] (ResumableSampler strides). Each image's
  views are seeded by (seed, epoch, image index), not by rank, so both layouts see the same views.
- BatchNorm: 1x16 uses MODEL.BN_SPLITS 2, whose groups are the batch positions i % 2, i.e.
  order[0::2] and order[1::2]: exactly the two ranks' batches in 2x8 (BN_SPLITS 1). So every
  sample is normalised with the same statistics in both layouts.
- SHUFFLE_BN off: the shuffle sends a different set of images to each key-encoder BN batch in the
  two layouts (a global permutation split by rank vs. positions i % 2 of a permuted batch).
- JIGSAW off: the 9 tiles of an image are consecutive rows, which BN_SPLITS 2 interleaves across
  both groups, while in 2x8 each image's tiles stay on its rank.
- Queue of 16 = one global batch: after each step it holds exactly that step's keys; the loss
  uses all of them, so their order does not matter, and the order is known (1x16 writes order[0..15],
  2x8 writes rank 0's keys then rank 1's).
- Loss: DDP averages the two ranks' gradients of their mean-over-8 losses, which is the gradient of
  the mean over 16; the per-sample terms do not couple samples (the queue holds the previous keys).
Tolerances: the two layouts sum the same terms in a different order (per-rank means then an
all-reduce, convolutions on batches of 8 vs 16), so after 3 SGD steps they differ by float32
rounding only. Measured max |diff|: weights 6e-8, queued keys 1e-6 (they pass through the whole
momentum encoder and the normalisation). Independent replicas (the engine without its DDP wrap)
differ by 6e-3 on the weights and 3e-3 on the keys. The bounds, 1e-5 (weights) and 1e-4 (keys),
lie between, at least 30x from each side.
"""
import os
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import infomin.pretrain.build as build
from infomin.pretrain.config import load_cfg
from infomin.datasets import write_imagefolder
from infomin.pretrain.engine import run_pretraining

from _methods_helpers import free_port
from _pretrain_helpers import TINY, one_thread, tiny_opts

STEPS = 3
ATOL = 1e-5  # weights
KEY_ATOL = 1e-4  # queued keys


def _opts(root, out, *extra):
    return tiny_opts(root, out, "MODEL.QUEUE_SIZE", 16, "VIEWS.IMAGE_SIZE", 32, "SOLVER.IMS_PER_BATCH", 16,
                     "SOLVER.EPOCHS", STEPS, "LOG.TENSORBOARD", "False", *extra)


def _comparable(bn_splits):
    """The setting in which 2x8 and 1x16 see the same BatchNorm groups (module docstring)."""
    return ["MODEL.JIGSAW", "False", "MODEL.SHUFFLE_BN", "False", "MODEL.BN_SPLITS", bn_splits]


def _run_and_save_state(opts, path):
    """run_pretraining, then save this process's method state (the engine saves rank 0's only)."""
    built = []
    real = build.build_method
    build.build_method = lambda *a, **kw: built.append(real(*a, **kw)) or built[-1]
    try:
        run_pretraining(load_cfg(TINY, opts))
    finally:
        build.build_method = real
    torch.save({k: v.detach().clone() for k, v in built[0].state_dict().items()}, path)


def _worker(rank, port, opts, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=120))
    try:  # the engine joins an initialised process group as torchrun's would be
        _run_and_save_state(opts, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    root = write_imagefolder(str(tmp / "data"), num_classes=4, train_per_class=4, val_per_class=1,
                                      size=48)
    load = lambda p: torch.load(p, map_location="cpu", weights_only=True)  # noqa: E731

    def two_processes(name, *extra):
        out = str(tmp / name)
        # fork: the children reuse this process's imports (spawn costs ~10 s of imports each)
        mp.start_processes(_worker, args=(free_port(), _opts(root, out, *extra), out), nprocs=2, join=True,
                           start_method="fork")
        return load(os.path.join(out, "rank0.pt")), load(os.path.join(out, "rank1.pt"))

    states = {"2x8": two_processes("2x8", *_comparable(1)), "recipe": two_processes("recipe")}
    with one_thread():
        _run_and_save_state(_opts(root, tmp / "1x16", *_comparable(2)), tmp / "1x16.pt")
    states["1x16"] = load(tmp / "1x16.pt")
    return states


def _per_rank(key):
    """BatchNorm running statistics are per rank by design (forward_sync_buffers=False)."""
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


@pytest.mark.slow
@pytest.mark.parametrize("run", ["2x8", "recipe"])
def test_both_ranks_hold_the_same_weights_after_training(states, run):
    rank0, rank1 = states[run]
    assert rank0.keys() == rank1.keys()
    assert int(rank0["memory.ptr"]) == 0  # 3 steps of 16 keys in a 16-key queue
    compared = [k for k in rank0 if not _per_rank(k)]
    assert any(k.startswith("encoder.") for k in compared) and "memory.queue" in compared
    differ = [k for k in compared if not torch.equal(rank0[k], rank1[k])]
    assert not differ, differ[:5]


@pytest.mark.slow
def test_two_processes_of_8_images_train_like_one_process_of_16(states):
    (rank0, _), single = states["2x8"], states["1x16"]
    params = [k for k in single if not _per_rank(k) and not k.startswith("memory.")]
    assert len(params) > 50
    worst = max(params, key=lambda k: (rank0[k] - single[k]).abs().max().item())
    assert torch.allclose(rank0[worst], single[worst], rtol=0, atol=ATOL), (
        worst, (rank0[worst] - single[worst]).abs().max().item())
    # the queue holds the last step's keys: 1x16 wrote order[0..15], 2x8 order[0::2] then order[1::2]
    q2, q1 = rank0["memory.queue"], single["memory.queue"]
    assert torch.allclose(q2[:8], q1[0::2], rtol=0, atol=KEY_ATOL)
    assert torch.allclose(q2[8:], q1[1::2], rtol=0, atol=KEY_ATOL)
