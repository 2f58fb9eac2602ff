"""The training step (infomin.pretrain.step): layout, optimizer implementation, transfers, syncs.

Oracles: the step as it was before channels-last / foreach (NCHW, torch's CPU default for-loop
SGD; the defaults must reproduce it bit for bit on the CPU: checked once against the previous
commit by hand, and here against `OPTIMIZER_IMPL for_loop, CHANNELS_LAST False`); torch's own
for-loop SGD (for foreach); the tensors' strides (for the layout); a TorchFunctionMode that sees
every `.item()`, `bool()`, `.tolist()`, `.cpu()` ... and every `.to(device)` (for syncs and copies).
"""
import json
import os

import pytest
import torch
from torch.overrides import TorchFunctionMode

import infomin.pretrain.engine as engine
from infomin.pretrain.checkpoint import load_checkpoint
from infomin.pretrain.config import load_cfg
from infomin.datasets import write_imagefolder
from infomin.pretrain.engine import run_pretraining
from infomin.pretrain.optim import build_optimizer, optimizer_impl, resolve_impl
from infomin.pretrain.step import compile_unavailable, nhwc, resolve_channels_last

from _pretrain_helpers import TINY, one_thread, tiny_opts

# 12 train images, batch 4: 3 iterations per epoch
SMALL = ("MODEL.QUEUE_SIZE", 16, "SOLVER.IMS_PER_BATCH", 4, "LOG.TENSORBOARD", "False")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_imagefolder(str(tmp_path_factory.mktemp("gen")), num_classes=2,
                             train_per_class=6, val_per_class=1, size=48)


def _run(root, out, *opts, monkeypatch=None, seen=None, resume=None):
    """A tiny run; `seen` (a dict) gets the optimizer and method the engine built."""
    if monkeypatch is not None:
        real_opt, real_prep = engine.build_optimizer, engine.prepare_model

        def record_opt(*a, **k):
            seen["optimizer"] = real_opt(*a, **k)
            return seen["optimizer"]

        def record_prep(*a, **k):
            seen["method"] = real_prep(*a, **k)
            return seen["method"]

        monkeypatch.setattr(engine, "build_optimizer", record_opt)
        monkeypatch.setattr(engine, "prepare_model", record_prep)
    with one_thread():
        ckpt = run_pretraining(load_cfg(TINY, tiny_opts(root, out, *SMALL, *opts)), resume=resume)
    losses = [json.loads(line)["loss"] for line in open(os.path.join(out, "metrics.jsonl")) if "loss" in line]
    return load_checkpoint(ckpt), losses


def test_default_step_on_cpu_is_bit_identical_to_the_plain_nchw_for_loop_step(root, tmp_path, monkeypatch):
    seen = {}
    new, new_losses = _run(root, tmp_path / "new", monkeypatch=monkeypatch, seen=seen)
    assert optimizer_impl(seen["optimizer"]) == "foreach"  # auto on the CPU
    assert seen["method"].encoder.conv1.weight.is_contiguous()  # NCHW on the CPU by default
    monkeypatch.undo()
    old, old_losses = _run(root, tmp_path / "old", "SOLVER.OPTIMIZER_IMPL", "for_loop", "MODEL.CHANNELS_LAST", "False")
    assert len(new_losses) == 6 and new_losses == old_losses
    for key in old["model"]:
        assert torch.equal(new["model"][key], old["model"][key]), key
    for a, b in zip(new["optimizer"]["state"].values(), old["optimizer"]["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])


def test_resume_uses_the_configured_optimizer_implementation_not_the_saved_one(root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _run(root, out, "SOLVER.OPTIMIZER_IMPL", "for_loop", "SOLVER.STOP_ITER", 2)
    seen = {}
    resumed, _ = _run(root, out, monkeypatch=monkeypatch, seen=seen, resume="auto")
    assert resumed["iteration"] == 6
    assert optimizer_impl(seen["optimizer"]) == "foreach"
    assert all(g["foreach"] and not g["fused"] for g in seen["optimizer"].param_groups)


def test_channels_last_forced_on_cpu_trains_nhwc_and_matches_nchw_closely(root, tmp_path, monkeypatch):
    seen, layouts = {}, []
    real_prep = engine.prepare_model

    def prep_and_hook(*a, **k):
        method = real_prep(*a, **k)
        seen["weights"] = [m.weight.is_contiguous(memory_format=torch.channels_last)
                           for m in method.modules() if isinstance(m, torch.nn.Conv2d)]
        method.encoder.conv1.register_forward_hook(
            lambda m, inp, out: layouts.append(inp[0].is_contiguous(memory_format=torch.channels_last)))
        return method

    monkeypatch.setattr(engine, "prepare_model", prep_and_hook)
    nhwc_run, nhwc_losses = _run(root, tmp_path / "nhwc", "MODEL.CHANNELS_LAST", "True")
    monkeypatch.undo()
    nchw_run, nchw_losses = _run(root, tmp_path / "nchw")
    # every convolution weight (both encoders) is NHWC, and views and jigsaw tiles both reach the
    # first convolution in NHWC, in all 6 steps
    assert len(seen["weights"]) == 2 * 21 and all(seen["weights"])  # R-18/4: 20 convolutions + a projection
    assert layouts == [True] * 12
    # oneDNN's NHWC kernels sum in another order: the first loss agrees to float32 rounding, later
    # ones drift a little further as 6 SGD steps (lr 0.0075, batch 4) amplify the differences
    assert nhwc_losses[0] == pytest.approx(nchw_losses[0], rel=1e-5)
    # (measured up to 1.5e-3 relative after six steps); a layout bug moves the loss by far more
    assert nhwc_losses == pytest.approx(nchw_losses, rel=5e-3)
    for key, value in nchw_run["model"].items():
        got = nhwc_run["model"][key]
        assert got.is_contiguous(), key  # checkpoints stay in the default layout
        if value.is_floating_point():
            torch.testing.assert_close(got, value, rtol=1e-2, atol=1e-2, msg=lambda m: key + "\n" + m)  # as the losses
        else:
            assert torch.equal(got, value), key


def test_nhwc_layout_of_images_and_jigsaw_tiles():
    x = torch.arange(2 * 9 * 3 * 4 * 4, dtype=torch.float32).view(2, 9, 3, 4, 4)
    y = nhwc(x)
    assert torch.equal(y, x)
    flat = y.flatten(0, 1)  # how the methods feed tiles to the encoder
    assert flat.is_contiguous(memory_format=torch.channels_last) and flat.data_ptr() == y.data_ptr()
    assert nhwc(x[0]).is_contiguous(memory_format=torch.channels_last) and torch.equal(nhwc(x[0]), x[0])
    assert nhwc(torch.arange(3)).is_contiguous()


def test_channels_last_setting():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [resolve_channels_last(v, cpu) for v in (None, "auto", True, False)] == [False, False, True, False]
    assert [resolve_channels_last(v, cuda) for v in (None, "auto", True, False)] == [True, True, True, False]
    with pytest.raises(ValueError, match=r"MODEL.CHANNELS_LAST must be one of .*got 'yes'"):
        load_cfg(TINY, ["MODEL.CHANNELS_LAST", "yes"])


@pytest.mark.parametrize("impl, fused, foreach", [("foreach", False, True), ("for_loop", False, False),
                                                   ("fused", True, False), ("auto", False, True)])
@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_optimizer_impl_reaches_param_groups_and_defaults(name, impl, fused, foreach):
    cfg = load_cfg(TINY, ["SOLVER.OPTIMIZER", name, "SOLVER.OPTIMIZER_IMPL", impl])
    opt = build_optimizer(cfg.SOLVER, [torch.nn.Parameter(torch.zeros(2))], 0.1)
    for where in (opt.defaults, opt.param_groups[0]):
        assert (bool(where["fused"]), bool(where["foreach"])) == (fused, foreach)


def test_auto_picks_fused_for_cuda_parameters():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():  # CUDA tensors without a GPU: only their device and dtype are read
        params = [torch.nn.Parameter(torch.empty(2, device="cuda"))]
    opt = build_optimizer(load_cfg(TINY).SOLVER, params, 0.1)
    assert opt.defaults["fused"] is True and optimizer_impl(opt) == "fused"


def test_unsupported_fused_and_unknown_impl_are_refused():
    meta = [torch.nn.Parameter(torch.empty(2, device="meta"))]
    with pytest.raises(ValueError, match="fused SGD does not support parameters on meta"):
        resolve_impl("SGD", "fused", meta)
    assert resolve_impl("SGD", "auto", meta) == {"fused": False, "foreach": True}
    with pytest.raises(ValueError, match=r"SOLVER.OPTIMIZER_IMPL must be one of"):
        load_cfg(TINY, ["SOLVER.OPTIMIZER_IMPL", "apex"])


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_foreach_and_fused_cpu_updates_equal_the_for_loop_update(name):
    """The tolerance behind `auto` = foreach on the CPU: SGD is exact; AdamW foreach is exact too,
    fused AdamW differs by float32 rounding."""
    torch.manual_seed(0)
    start = [torch.randn(s) for s in ((8, 3, 3, 3), (8,), (5, 8))]

    def train(impl):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        cfg = load_cfg(TINY, ["SOLVER.OPTIMIZER", name, "SOLVER.OPTIMIZER_IMPL", impl])
        opt = build_optimizer(cfg.SOLVER, params, 0.1)
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        return params

    ref = train("for_loop")
    for a, b in zip(train("foreach"), ref):
        assert torch.equal(a, b)
    for a, b in zip(train("fused"), ref):
        if name == "SGD":
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


SYNCS = {"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "nonzero",
         "masked_select", "unique", "equal", "allclose", "_local_scalar_dense"}


class _Watch(TorchFunctionMode):
    """Records, per step, calls that make the host wait for a device value, and device copies."""

    def __init__(self):
        super().__init__()
        self.step, self.paused = None, False
        self.syncs, self.copies, self.tensors = {}, {}, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.step is not None and not self.paused:
            if name in SYNCS:
                self.syncs.setdefault(self.step, []).append(name)
            if name == "to" and any(isinstance(a, (torch.device, str)) for a in (*args[1:], *kwargs.values())
                                    if not isinstance(a, bool)):
                self.copies.setdefault(self.step, []).append(kwargs.get("non_blocking", False))
        return func(*args, **kwargs)


def test_no_host_sync_between_log_points_and_one_async_copy_per_tensor(root, tmp_path, monkeypatch):
    watch = _Watch()
    real_loader, real_before = engine.build_loader, engine.PretrainTrainer.before_step

    class Paused:  # the loader's own (host) work is not the step's
        def __init__(self, loader):
            self.loader = loader

        def __iter__(self):
            watch.paused = True  # (torch's loader draws its base seed with .item() here)
            try:
                it = iter(self.loader)
            finally:
                watch.paused = False

            class It:
                def __next__(self_):
                    watch.paused = True
                    try:
                        batch = next(it)
                        watch.tensors.append(sum(torch.is_tensor(v) for v in batch.values()))
                        return batch
                    finally:
                        watch.paused = False
            return It()

        def __len__(self):
            return len(self.loader)

    def before_step(trainer):
        watch.step = trainer.iter + 1
        real_before(trainer)

    monkeypatch.setattr(engine, "build_loader", lambda *a, **k: Paused(real_loader(*a, **k)))
    monkeypatch.setattr(engine.PretrainTrainer, "before_step", before_step)
    with watch:
        _run(root, tmp_path, "LOG.PERIOD", 3)
    assert set(watch.syncs) == {3, 6}  # log points (and epoch-end checkpoints) only
    assert set(watch.copies) == set(range(1, 7))
    # every tensor of the batch (views, jigsaw tiles, index, label) is copied once, asynchronously;
    # the only blocking copies are the logged scalars' (at log points)
    assert watch.tensors == [5] * 6
    for step, flags in watch.copies.items():
        assert flags.count(True) == 5, (step, flags)
        assert flags.count(False) == (1 if step % 3 == 0 else 0), (step, flags)


def test_compile_requested_without_a_compiler_is_a_one_line_error(root, tmp_path, monkeypatch):
    import infomin.pretrain.step as step

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(step.shutil, "which", lambda name: None)
    assert "needs a C++ compiler" in compile_unavailable(torch.device("cpu"))
    with pytest.raises(RuntimeError, match=r"^MODEL.COMPILE True: torch.compile on the CPU needs a C\+\+ "
                                           r"compiler .*; or set MODEL.COMPILE False.$"):
        run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path, "MODEL.COMPILE", "True")))
    assert not os.path.exists(tmp_path / "config.yaml")  # refused before anything was written


@pytest.mark.slow
@pytest.mark.skipif(compile_unavailable(torch.device("cpu")) is not None,
                    reason=f"{compile_unavailable(torch.device('cpu'))}")
def test_compiled_encoders_train_like_eager_ones(root, tmp_path, monkeypatch):
    """Real inductor on the CPU (the first run compiles C++ for minutes; later runs hit the cache)."""
    opts = ("MODEL.JIGSAW", "False", "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 2)
    seen = {}
    compiled, compiled_losses = _run(root, tmp_path / "compiled", "MODEL.COMPILE", "True", *opts,
                                     monkeypatch=monkeypatch, seen=seen)
    assert seen["method"].encoder._compiled_call_impl is not None
    assert seen["method"].encoder_ema._compiled_call_impl is not None
    monkeypatch.undo()
    eager, eager_losses = _run(root, tmp_path / "eager", *opts)
    assert compiled["model"].keys() == eager["model"].keys()  # names unchanged: checkpoints convert as before
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    for key, value in eager["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(compiled["model"][key], value, rtol=1e-3, atol=1e-4, msg=key)
