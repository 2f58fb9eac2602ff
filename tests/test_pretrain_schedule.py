"""LR schedules against the reference formulas (PyContrast's `options/base_options.py` defaults and `learning/base_trainer.py` `adjust_learning_rate` / `warmup_learning_rate`), computed by hand."""
import math

import pytest
import torch

from infomin.pretrain.config import load_cfg
from infomin.pretrain.schedule import Schedule, build_schedule, reference_warmup_epochs, scaled_lr


def test_linear_scaling_matches_the_reference_multi_node_example():
    assert scaled_lr(0.03, 512, 256) == pytest.approx(0.06)  # RUN.md: batch 512 -> lr 0.06


def test_cosine_is_per_epoch_from_one_and_ends_at_lr_times_gamma_cubed():
    s = Schedule(base_lr=0.03, epochs=200, iters_per_epoch=10, kind="cosine", gamma=0.1)
    eta_min = 0.03 * 1e-3
    first = eta_min + (0.03 - eta_min) * (1 + math.cos(math.pi * 1 / 200)) / 2
    assert s.lr(0) == pytest.approx(first) and s.lr(9) == pytest.approx(first)
    assert s.lr(0) < 0.03
    assert s.lr(199 * 10) == pytest.approx(eta_min)  # last epoch sits at the minimum
    assert s.lr(99 * 10) == pytest.approx(eta_min + (0.03 - eta_min) * 0.5)  # epoch 100 of 200


def test_step_schedule_decays_after_the_listed_epochs():
    s = Schedule(base_lr=30.0, epochs=60, iters_per_epoch=5, kind="step", steps=(30, 40, 50), gamma=0.2)
    assert s.lr(29 * 5) == pytest.approx(30.0)  # epoch 30
    assert s.lr(30 * 5) == pytest.approx(6.0)  # epoch 31
    assert s.lr(45 * 5) == pytest.approx(1.2)
    assert s.lr(59 * 5 + 4) == pytest.approx(0.24)


def test_warmup_goes_linearly_from_absolute_001_to_the_cosine_value():
    s = Schedule(base_lr=0.06, epochs=200, iters_per_epoch=4, kind="cosine", warmup_epochs=5)
    target = s.epoch_lr(5)
    assert s.lr(0) == pytest.approx(0.01)
    assert s.lr(10) == pytest.approx(0.01 + 10 / 20 * (target - 0.01))
    assert s.lr(20) == pytest.approx(s.epoch_lr(6))  # first iteration after warm-up


def test_reference_warmup_rule_and_config_auto():
    assert reference_warmup_epochs(256, 200) == 0
    assert reference_warmup_epochs(512, 200) == 5 and reference_warmup_epochs(512, 800) == 10
    cfg = load_cfg(None, ["SOLVER.IMS_PER_BATCH", "1024"])
    s = build_schedule(cfg.SOLVER, 1024, 100)
    assert s.warmup_epochs == 5 and s.base_lr == pytest.approx(0.12)
    cfg = load_cfg(None, ["SOLVER.IMS_PER_BATCH", "1024", "SOLVER.WARMUP_EPOCHS", "0",
                          "SOLVER.SCALE_LR", "False"])
    s = build_schedule(cfg.SOLVER, 1024, 100)  # explicit settings are kept
    assert s.warmup_epochs == 0 and s.base_lr == pytest.approx(0.03)


def test_lambdalr_state_resumes_on_the_same_curve():
    s = Schedule(base_lr=0.1, epochs=4, iters_per_epoch=3, kind="cosine")
    p = torch.nn.Parameter(torch.zeros(1))

    def make():
        opt = torch.optim.SGD([p], lr=s.base_lr)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, s.multiplier)

    opt, sched = make()
    seen = []
    for _ in range(7):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    opt2, sched2 = make()
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(s.lr(7))
    assert seen == pytest.approx([s.lr(i) for i in range(7)])
