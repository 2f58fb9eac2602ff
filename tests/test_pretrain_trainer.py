"""The trainer/hook loop, the periodic checkpoint hook, the optimizer choice and the single owner
of the pretraining checkpoint format (engine, resume, converter and Detectron2 guard agree)."""
import pytest
import torch

from infomin import checkpoint_format as fmt
from infomin.pretrain.checkpoint import load_checkpoint
from infomin.pretrain.config import load_cfg
from infomin.pretrain.hooks import PeriodicCheckpointHook
from infomin.pretrain.optim import build_optimizer
from infomin.pretrain.trainer import HookBase, TrainerBase

from _pretrain_helpers import TINY, one_thread, tiny_opts


class Counting(TrainerBase):
    def __init__(self, fail_at=None):
        super().__init__()
        self.steps, self.fail_at = [], fail_at

    def run_step(self):
        if self.iter == self.fail_at:
            raise RuntimeError("boom")
        self.steps.append(self.iter)


class Recorder(HookBase):
    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def before_train(self):
        self.calls.append(("before_train", self.trainer.iter))

    def before_step(self):
        self.calls.append(("before_step", self.trainer.iter))

    def after_step(self):
        self.calls.append(("after_step", self.trainer.iter))
        if self.trainer.iter == self.stop_after:
            self.trainer.request_stop()

    def after_train(self):
        self.calls.append(("after_train", self.trainer.iter))


def test_a_custom_hook_sees_every_step_with_its_iteration_and_can_stop_the_run():
    trainer, hook = Counting(), Recorder()
    trainer.register_hooks([hook])
    trainer.train(3, 6)  # a resumed run: steps 3, 4, 5
    assert trainer.steps == [3, 4, 5]
    assert hook.calls == [("before_train", 3), ("before_step", 3), ("after_step", 3), ("before_step", 4),
                          ("after_step", 4), ("before_step", 5), ("after_step", 5), ("after_train", 6)]

    trainer, hook = Counting(), Recorder(stop_after=1)
    trainer.register_hooks([hook])
    trainer.train(0, 5)
    assert trainer.steps == [0, 1] and hook.calls[-1] == ("after_train", 2)  # two steps done

    trainer, hook = Counting(fail_at=2), Recorder()
    trainer.register_hooks([hook])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train(0, 5)
    assert hook.calls[-1] == ("after_train", 2)  # after_train still runs, short of max_iter


class FakeCheckpointer:
    def __init__(self):
        self.saved = []

    def save(self, iteration, final=False):
        self.saved.append(("final" if final else "periodic", iteration))
        return f"{iteration}{'F' if final else ''}"


def test_the_checkpoint_hook_saves_when_due_when_stopped_and_at_the_end():
    ckpt = FakeCheckpointer()
    trainer, hook = Counting(), PeriodicCheckpointHook(ckpt, is_due=lambda done: done % 3 == 0)
    trainer.register_hooks([hook])
    trainer.train(0, 9)
    assert ckpt.saved == [("periodic", 3), ("periodic", 6), ("final", 9)]  # the last one is the final
    assert hook.last_path == "9F"

    ckpt = FakeCheckpointer()
    trainer, hook = Counting(), PeriodicCheckpointHook(ckpt, is_due=lambda done: done % 3 == 0)
    trainer.register_hooks([Recorder(stop_after=3), hook])  # asked to stop after the 4th step
    trainer.train(0, 9)
    assert ckpt.saved == [("periodic", 3), ("periodic", 4)] and hook.last_path == "4"  # no final

    ckpt = FakeCheckpointer()  # resumed from a finished run: nothing to do, nothing written
    trainer = Counting()
    trainer.register_hooks([PeriodicCheckpointHook(ckpt, is_due=lambda done: True)])
    trainer.train(9, 9)
    assert ckpt.saved == []


def test_the_optimizer_comes_from_the_config_and_an_unknown_one_is_refused(tmp_path):
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(load_cfg(TINY).SOLVER, params, 0.5)
    assert type(sgd) is torch.optim.SGD
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 1e-4 and sgd.defaults["lr"] == 0.5
    cfg = load_cfg(TINY, ["SOLVER.OPTIMIZER", "AdamW", "SOLVER.WEIGHT_DECAY", 0.05, "LINEAR.OPTIMIZER", "AdamW"])
    adamw = build_optimizer(cfg.SOLVER, params, 0.1)
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["weight_decay"] == 0.05
    assert type(build_optimizer(cfg.LINEAR, params, 0.1)) is torch.optim.AdamW
    with pytest.raises(ValueError, match=r"SOLVER.OPTIMIZER must be one of \('SGD', 'AdamW'\), got 'Adam'"):
        load_cfg(TINY, ["SOLVER.OPTIMIZER", "Adam"])
    # ... and it reaches the optimizer the engine trains with (Adam keeps exp_avg, SGD a momentum buffer)
    from infomin.datasets import write_imagefolder
    from infomin.pretrain.engine import run_pretraining

    root = write_imagefolder(str(tmp_path / "data"), num_classes=2, train_per_class=8, val_per_class=1)
    with one_thread():
        path = run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "out", "SOLVER.OPTIMIZER", "AdamW",
                                                        "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 1)))
    state = next(iter(load_checkpoint(path)["optimizer"]["state"].values()))
    assert "exp_avg" in state and "momentum_buffer" not in state


def _own_checkpoint(path, version=fmt.FORMAT_VERSION, weights=True):
    from torchvision.models import resnet18

    model = {f"encoder.{k}": v for k, v in resnet18().state_dict().items() if not k.startswith("fc.")}
    model = model if weights else {}
    payload = fmt.make_payload(arch="resnet18", width=1, method="InfoMin", model=model, optimizer={},
                               scheduler={}, scaler={}, epoch=0, iteration=0, rngs=[{}], config="")
    payload["format_version"] = version
    torch.save(payload, path)
    return model


def test_every_reader_recognises_the_format_through_its_owner(tmp_path, monkeypatch):
    from infomin.convert import ConversionError, convert_checkpoint
    from infomin.detection.train_net import _is_pretraining_checkpoint

    path = str(tmp_path / "own.pth")
    model = _own_checkpoint(path)
    assert load_checkpoint(path)["format"] == fmt.FORMAT
    assert _is_pretraining_checkpoint(path)
    assert convert_checkpoint(path, str(tmp_path / "d2.pkl")).fmt == "infomin"
    assert set(fmt.encoder_state(load_checkpoint(path))) == {k[len("encoder."):] for k in model}

    newer = str(tmp_path / "newer.pth")
    _own_checkpoint(newer, version=fmt.FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match="format_version 2; this infomin reads up to 1"):
        load_checkpoint(newer)
    with pytest.raises(ConversionError, match="format_version 2; this infomin reads up to 1"):
        convert_checkpoint(newer, str(tmp_path / "newer.pkl"))

    monkeypatch.setattr(fmt, "FORMAT", "infomin.pretrain.v2")  # a renamed format reaches every reader
    renamed = str(tmp_path / "renamed.pth")
    _own_checkpoint(renamed)
    assert load_checkpoint(renamed)["format"] == "infomin.pretrain.v2"
    assert _is_pretraining_checkpoint(renamed)
    bare = str(tmp_path / "bare.pth")  # no weights the guard could know by their names: the format alone
    _own_checkpoint(bare, weights=False)
    assert _is_pretraining_checkpoint(bare)
    assert convert_checkpoint(renamed, str(tmp_path / "renamed.pkl")).fmt == "infomin"
    with pytest.raises(ValueError, match="not an infomin pretraining checkpoint"):
        load_checkpoint(path)  # the old name no longer reads as this format
