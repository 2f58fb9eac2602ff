"""End-to-end engine runs on generated JPEGs (tiny InfoMin: ResNet-18/4, 64 px, CPU).

Oracles: an uninterrupted run (for kill-and-resume), torchvision's ResNet key names,
infomin.convert + Detectron2's DetectionCheckpointer (for the checkpoint), chance level (for
linear eval) and a brute-force kNN (for the monitor).
"""
import json
import os
import shutil

import numpy as np
import pytest
import torch
import torchvision

from infomin.pretrain.checkpoint import FINAL_NAME, load_checkpoint
from infomin.pretrain.cli.pretrain import main as pretrain_main
from infomin.pretrain.config import cfg_from_yaml_string, load_cfg
from infomin.datasets import write_imagefolder
from infomin.pretrain.data import BadImageError
from infomin.pretrain.engine import run_pretraining
from infomin.pretrain.knn import knn_accuracy
from infomin.pretrain.linear_eval import run_linear_eval

from _pretrain_helpers import TINY, one_thread, tiny_opts


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_imagefolder(str(tmp_path_factory.mktemp("gen")), num_classes=4, class_colour=True,
                                      train_per_class=12, val_per_class=6, size=64)


@pytest.fixture(scope="module")
def runs(root, tmp_path_factory):
    """One uninterrupted run and one stopped mid-epoch 2 then resumed (`--resume auto`)."""
    out = tmp_path_factory.mktemp("runs")
    opts = ["KNN.ENABLED", "True", "KNN.K", "5"]  # the monitor runs too and must not disturb anything
    with one_thread():
        full = run_pretraining(load_cfg(TINY, tiny_opts(root, out / "full") + opts))
        stopped = run_pretraining(load_cfg(TINY, tiny_opts(root, out / "resumed", "SOLVER.STOP_ITER", 4) + opts))
        files_at_stop = sorted(os.listdir(out / "resumed"))
        resumed = run_pretraining(load_cfg(TINY, tiny_opts(root, out / "resumed") + opts), resume="auto")
    return {"full": full, "stopped": stopped, "files_at_stop": files_at_stop, "resumed": resumed, "out": out}


def test_kill_and_resume_gives_the_same_weights_as_an_uninterrupted_run(runs):
    assert os.path.basename(runs["stopped"]) == "checkpoint_00000004.pth"  # mid-epoch 2 (3 iters/epoch)
    assert FINAL_NAME not in runs["files_at_stop"]
    assert not [f for f in runs["files_at_stop"] if f.startswith(".tmp")]
    a, b = load_checkpoint(runs["full"]), load_checkpoint(runs["resumed"])
    assert a["iteration"] == b["iteration"] == 6
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k  # exact, queue and pointer included
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["scheduler"] == b["scheduler"]


def test_checkpoint_follows_the_documented_format(runs):
    ckpt = torch.load(runs["full"], map_location="cpu", weights_only=True)  # no pickled code
    assert ckpt["format"] == "infomin.pretrain" and ckpt["format_version"] == 1
    assert (ckpt["arch"], ckpt["width"], ckpt["method"]) == ("resnet18", 0.25, "InfoMin")
    assert (ckpt["epoch"], ckpt["iteration"]) == (2, 6)
    want = {k for k in torchvision.models.resnet18().state_dict() if not k.startswith("fc.")}
    # at width 1/4 layer1 has 16 channels after a 64-channel stem: torchvision adds its projection
    want |= {k for k in torchvision.models.resnet50().state_dict() if k.startswith("layer1.0.downsample.")}
    assert {k[len("encoder."):] for k in ckpt["model"] if k.startswith("encoder.")} == want
    assert {k[len("encoder_ema."):] for k in ckpt["model"] if k.startswith("encoder_ema.")} == want
    assert ckpt["model"]["memory.ptr"].item() == (6 * 16) % 256  # 6 steps of 16 keys in a 256 queue
    for key in ("optimizer", "scheduler", "scaler", "rng", "config"):
        assert key in ckpt
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python", "ranks"}
    assert cfg_from_yaml_string(ckpt["config"]).MODEL.METHOD == "InfoMin"
    out = os.path.dirname(runs["full"])
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(out, "tb")))
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["iteration"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in records if "knn_top1" in r] == [0, 1]
    assert all(k in records[0] for k in ("loss", "lr", "data_time"))


def test_precision_bf16_on_cpu_trains_and_fp16_on_cpu_is_refused(root, tmp_path):
    with one_thread():
        ckpt = run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "bf16", "MODEL.PRECISION", "bf16",
                                                           "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 2)))
    state = load_checkpoint(ckpt)
    assert state["model"]["encoder.conv1.weight"].dtype == torch.float32  # autocast, fp32 master weights
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "fp16", "MODEL.PRECISION", "fp16")))


def test_linear_eval_beats_chance(runs, root):
    cfg = load_cfg(TINY, tiny_opts(root, runs["out"] / "full"))
    with one_thread():
        result = run_linear_eval(cfg, runs["full"])
    assert result["top1"] > 60.0  # 4 classes: chance is 25%
    assert result["top5"] == 100.0  # top-5 of 4 classes
    assert os.path.isfile(runs["out"] / "full" / "linear_eval" / "results.json")
    with one_thread():  # resuming a finished evaluation returns its result without retraining
        again = run_linear_eval(cfg, runs["full"], resume="auto")
    assert again == result


def test_checkpoint_converts_and_loads_into_detectron2_without_missing_backbone_keys(root, tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_backbone

    from infomin.convert import convert_checkpoint

    with one_thread():
        ckpt = run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path, "MODEL.WIDTH", 1.0, "SOLVER.EPOCHS", 1,
                                                           "SOLVER.ITERS_PER_EPOCH", 1)))
    summary = convert_checkpoint(ckpt, str(tmp_path / "d2.pkl"))
    cfg = get_cfg()
    cfg.merge_from_list(summary.detectron2_opts())
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
    model = torch.nn.Module()
    model.backbone = build_backbone(cfg)  # the ResNet alone: res2-res5 all in one place
    with torch.no_grad():  # poison the backbone: anything not loaded stays NaN
        for name, t in model.state_dict().items():
            if name.startswith("backbone.") and t.is_floating_point():
                t.fill_(float("nan"))
    DetectionCheckpointer(model).load(str(tmp_path / "d2.pkl"))
    nan = [n for n, t in model.state_dict().items()
           if n.startswith("backbone.") and t.is_floating_point() and torch.isnan(t).any()]
    assert not nan, nan[:5]
    state = load_checkpoint(ckpt)["model"]
    got = model.backbone.state_dict()["res3.0.conv2.weight"]
    assert torch.equal(got, state["encoder.layer2.0.conv2.weight"])


def test_missing_data_root_and_corrupt_image_get_clear_errors(root, tmp_path, capsys):
    from _pretrain_helpers import usage_error

    msg = usage_error(pretrain_main, ["--config-file", TINY, *tiny_opts(tmp_path / "nowhere", tmp_path / "o1")],
                      capsys, "infomin-pretrain")
    assert "DATA.ROOT" in msg and "does not exist" in msg

    bad_root = tmp_path / "data"
    shutil.copytree(root, bad_root)
    corrupt = sorted(sorted((bad_root / "train").iterdir())[1].iterdir())[3]
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated
    with one_thread(), pytest.raises(BadImageError) as e:  # default limit: 0.1% of the images
        run_pretraining(load_cfg(TINY, tiny_opts(bad_root, tmp_path / "o2", "SOLVER.ITERS_PER_EPOCH", 3)))
    assert str(corrupt) in str(e.value) and "DATA.MAX_BAD_FRACTION" in str(e.value)
    with one_thread():  # under a limit the user raised, the run goes on
        run_pretraining(load_cfg(TINY, tiny_opts(bad_root, tmp_path / "o3", "DATA.MAX_BAD_FRACTION", 0.1,
                                                 "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 3)))


def test_knn_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    train_x, train_y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    val_x, val_y = torch.randn(15, 6, generator=g), torch.randint(0, 3, (15,), generator=g)
    loader = lambda x, y: [{"image": x[i:i + 7], "label": y[i:i + 7]} for i in range(0, len(x), 7)]
    got = knn_accuracy(torch.nn.Flatten(), loader(train_x, train_y), loader(val_x, val_y), k=5,
                       temperature=0.1, device="cpu")
    tn = train_x.numpy() / np.linalg.norm(train_x.numpy(), axis=1, keepdims=True)
    vn = val_x.numpy() / np.linalg.norm(val_x.numpy(), axis=1, keepdims=True)
    hits = 0
    for v, y in zip(vn, val_y.numpy()):
        sims = tn @ v
        top = np.argsort(-sims)[:5]
        votes = np.zeros(3)
        for j in top:
            votes[train_y[j]] += np.exp(sims[j] / 0.1)
        hits += int(votes.argmax() == y)
    assert got == pytest.approx(100.0 * hits / 15)


PRESETS = ["insdis", "cmc", "moco", "pirl", "mocov2", "cmcv2", "infomin", "supervised"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_method_preset_trains_checkpoints_and_evaluates(name, root, tmp_path):
    """Each reference recipe, shrunk (ResNet-18/4, 64 px, 2 steps), runs through the whole engine."""
    path = os.path.join(os.path.dirname(TINY), "supervised_R50.yaml" if name == "supervised" else f"{name}_R50_200ep.yaml")
    opts = tiny_opts(root, tmp_path, "MODEL.ARCH", "resnet18", "MODEL.WIDTH", 0.25, "VIEWS.IMAGE_SIZE", 64,
                     "VIEWS.JIGSAW_CROP", 72, "VIEWS.JIGSAW_TILE", 18, "DATA.NUM_WORKERS", 0,
                     "SOLVER.IMS_PER_BATCH", 8, "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 2,
                     "LOG.PROGRESS_BAR", "False", "LINEAR.EPOCHS", 1, "LINEAR.IMS_PER_BATCH", 8,
                     "LINEAR.ITERS_PER_EPOCH", 1, "LINEAR.BASE_LR", 0.5)
    if name != "supervised":
        opts += ["MODEL.QUEUE_SIZE", "16"]
    cfg = load_cfg(path, opts)
    with one_thread():
        ckpt = run_pretraining(cfg)
        result = run_linear_eval(cfg, ckpt)
    state = load_checkpoint(ckpt)
    assert state["method"] == cfg.MODEL.METHOD and state["iteration"] == 2
    assert any(k.startswith("encoder.") for k in state["model"])
    assert 0.0 <= result["top1"] <= result["top5"] <= 100.0


def test_linear_eval_resumes_after_an_interruption_to_the_same_classifier(runs, root, tmp_path, monkeypatch):
    import infomin.pretrain.linear_eval as le

    opts = ["LINEAR.EPOCHS", "3", "LINEAR.STEPS", "(1, 2)", "LINEAR.ITERS_PER_EPOCH", "2"]
    with one_thread():
        full = run_linear_eval(load_cfg(TINY, tiny_opts(root, tmp_path / "a") + opts), runs["full"])
    real_evaluate, calls = le.evaluate, []

    def dies_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed after epoch 2's checkpoint
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(le, "evaluate", dies_in_epoch_3)
    cfg = load_cfg(TINY, tiny_opts(root, tmp_path / "b") + opts)
    with one_thread(), pytest.raises(KeyboardInterrupt):
        run_linear_eval(cfg, runs["full"])
    assert torch.load(tmp_path / "b" / "linear_eval" / "linear_checkpoint.pth", weights_only=True)["epoch"] == 2
    monkeypatch.setattr(le, "evaluate", real_evaluate)
    with one_thread():
        resumed = run_linear_eval(cfg, runs["full"], resume="auto")
    assert resumed == full
    a = torch.load(tmp_path / "a" / "linear_eval" / "linear_final.pth", weights_only=True)["classifier"]
    b = torch.load(tmp_path / "b" / "linear_eval" / "linear_final.pth", weights_only=True)["classifier"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _interrupt_then_resume(runs, root, out, interrupt, extra=(), new_session=False) -> str:
    """Start the tiny pretraining (the same run as runs["full"]) as a real process, call
    `interrupt(proc)` after its first logged loss, and return its output once it has exited 0
    leaving one checkpoint, whose `--resume auto` must end on the uninterrupted run's weights."""
    import subprocess
    import sys
    import time

    from _pretrain_helpers import REPO

    opts = tiny_opts(root, out) + ["KNN.ENABLED", "True", "KNN.K", "5"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tools", "pretrain.py"), "--config-file", TINY,
                             *opts, *extra], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=new_session)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count('"loss"') >= 1:
            break
        time.sleep(0.05)
    interrupt(proc)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, log[-3000:]
    saved = sorted(f for f in os.listdir(out) if f.endswith(".pth"))
    assert len(saved) == 1 and saved[0].startswith("checkpoint_") and FINAL_NAME not in saved
    with one_thread():
        final = run_pretraining(load_cfg(TINY, opts), resume="auto")
    a, b = load_checkpoint(runs["full"])["model"], load_checkpoint(final)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    return log


def test_sigterm_checkpoints_and_exits_then_resume_matches_the_uninterrupted_run(runs, root, tmp_path):
    """A real process gets SIGTERM (what a cluster sends before pre-emption) part-way through."""
    import signal

    log = _interrupt_then_resume(runs, root, tmp_path / "killed", lambda proc: proc.send_signal(signal.SIGTERM))
    assert "Stopped at iteration" in log


def test_ctrl_c_checkpoints_and_exits_cleanly_then_resume_matches_the_uninterrupted_run(runs, root, tmp_path):
    """Ctrl-C in a terminal sends SIGINT to the whole process group (the command and its loader
    workers): the run checkpoints at the next log point, says how to continue, exits 0 with no
    traceback, and `--resume auto` ends on the uninterrupted run's weights."""
    import signal

    log = _interrupt_then_resume(runs, root, tmp_path / "interrupted",
                                 lambda proc: os.killpg(proc.pid, signal.SIGINT),  # what the terminal does
                                 extra=("DATA.NUM_WORKERS", "1"),  # a loader worker gets the Ctrl-C too
                                 new_session=True)
    assert "Received SIGINT" in log and "continue with --resume auto" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]


def test_bn_splits_trains_split_encoders_and_bad_splits_or_no_op_shuffle_are_reported(root, tmp_path, caplog):
    """BN_SPLITS reaches the run and the checkpoint keeps plain BatchNorm keys; a batch it cannot
    divide stops before training; SHUFFLE_BN on one process without it is warned about."""
    short = ("SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 2)
    warning = "SHUFFLE_BN has no effect on one process"
    with one_thread(), caplog.at_level("WARNING", logger="infomin.pretrain.engine"):
        ckpt = run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "split", "MODEL.BN_SPLITS", 4, *short)))
        assert warning not in caplog.text
        state = load_checkpoint(ckpt)
        assert "BN_SPLITS: 4" in state["config"]
        assert "encoder.bn1.running_var" in state["model"] and "encoder_ema.bn1.running_var" in state["model"]
        with pytest.raises(ValueError, match=r"MODEL.BN_SPLITS=3 must divide the batch per process \(16"):
            run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "bad", "MODEL.BN_SPLITS", 3, *short)))
        assert not any(n.endswith(".pth") for n in os.listdir(tmp_path / "bad"))
        run_pretraining(load_cfg(TINY, tiny_opts(root, tmp_path / "plain", "MODEL.SHUFFLE_BN", "True", *short)))
        assert warning in caplog.text
