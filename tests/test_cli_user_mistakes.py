"""The pretraining and view tools, run the way a user runs them, on the mistakes users make: each
answer is one `tool: error: what was wrong; what to do` line with exit status 2 and no traceback,
and nothing a previous run wrote is overwritten, appended to or lost.

Oracles: the bytes and listing of the output folder before and after, the message's content.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from infomin.datasets import write_imagefolder

from _pretrain_helpers import REPO, TINY, usage_error

PRETRAIN = "infomin-pretrain"
LINEAR = "infomin-linear-eval"


def _pretrain(argv):
    from infomin.pretrain.cli.pretrain import main

    return main(argv)


def _linear(argv):
    from infomin.pretrain.cli.linear_eval import main

    return main(argv)


def _snapshot(folder) -> dict:
    """Every file under `folder` (relative path -> bytes)."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_imagefolder(str(tmp_path_factory.mktemp("data")), num_classes=2, class_colour=True,
                             train_per_class=8, val_per_class=2, size=64)


SHORT = ["SOLVER.EPOCHS", "1", "SOLVER.ITERS_PER_EPOCH", "1", "KNN.ENABLED", "True", "KNN.K", "3",
         "LINEAR.EPOCHS", "1", "LINEAR.STEPS", "(1,)", "LINEAR.ITERS_PER_EPOCH", "1"]


@pytest.fixture(scope="module")
def finished(root, tmp_path_factory):
    """A finished one-iteration run, made by the real command with Python warnings as errors and
    more loader workers than this machine has cores (both must pass quietly)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    opts = ["DATA.ROOT", str(root), "OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu", *SHORT,
            "DATA.NUM_WORKERS", str(len(os.sched_getaffinity(0)) + 2)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="error")
    proc = subprocess.run([sys.executable, "-W", "error", os.path.join(REPO, "tools", "pretrain.py"),
                           "--config-file", TINY, *opts], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    return {"out": out, "opts": opts, "proc": proc}


def test_the_tiny_config_runs_without_a_warning_and_caps_the_loader_workers_once(finished):
    proc = finished["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " WARNING" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.count("available CPU cores: using") == 1, proc.stderr[-3000:]


def test_a_rerun_is_refused_before_anything_is_written_or_read(finished, capsys, tmp_path):
    out = finished["out"]
    before = _snapshot(out)
    # DATA.ROOT missing: had the data been read first, that would be the error
    opts = [v if v != finished["opts"][1] else str(tmp_path / "no-data") for v in finished["opts"]]
    msg = usage_error(_pretrain, ["--config-file", TINY, *opts], capsys, PRETRAIN)
    assert str(out) in msg and "model_final.pth" in msg and "--resume auto" in msg and "--overwrite" in msg
    assert _snapshot(out) == before


def test_overwrite_moves_the_old_run_aside_and_starts_clean(finished, tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished["out"], out)
    before = _snapshot(out)
    opts = [v if v != str(finished["out"]) else str(out) for v in finished["opts"]]
    assert _pretrain(["--config-file", TINY, *opts, "--overwrite"]) == 0
    (aside,) = [d for d in os.listdir(out) if d.startswith("replaced-")]
    moved = _snapshot(out / aside)
    assert moved == before  # the old run, byte for byte, nothing left behind or lost
    new_records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    old_records = [json.loads(line) for line in before["metrics.jsonl"].decode().splitlines()]
    assert len(new_records) == len(old_records)  # not appended to the old log
    assert sorted(f for f in os.listdir(out) if f.endswith(".pth")) == ["model_final.pth"]
    assert "--overwrite: moved" in capsys.readouterr().err


def test_resume_with_another_arch_names_the_setting_and_changes_nothing(finished, capsys):
    out = finished["out"]
    before = _snapshot(out)
    msg = usage_error(_pretrain, ["--config-file", TINY, *finished["opts"], "MODEL.ARCH", "resnet34",
                                  "--resume", "auto"], capsys, PRETRAIN)
    assert "MODEL.ARCH 'resnet18' -> 'resnet34'" in msg and "MoCoMethod" not in msg
    assert _snapshot(out) == before  # config.yaml not rewritten with the other model


@pytest.mark.parametrize("opts, expected", [
    (["MODEL.ARCH", "resnet51"], "unknown arch 'resnet51'; choose one of"),
    (["MODEL.PRECISION", "fp16"], "MODEL.PRECISION fp16 needs a CUDA device"),
    (["MODEL.DEVICE", "cuda"], "MODEL.DEVICE is 'cuda' but CUDA is not available"),
])
def test_settings_this_machine_or_library_cannot_honour(root, tmp_path, capsys, monkeypatch, opts, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["DATA.ROOT", str(root), "OUTPUT_DIR", str(tmp_path / "o"), "MODEL.DEVICE", "cpu"]
    msg = usage_error(_pretrain, ["--config-file", TINY, *base, *opts], capsys, PRETRAIN)
    assert expected in msg
    assert not list(tmp_path.glob("o/*.pth"))


def test_linear_eval_rerun_is_refused_and_overwrite_moves_it_aside(finished, tmp_path, capsys):
    ckpt = str(finished["out"] / "model_final.pth")
    lin = tmp_path / "lin"
    assert _linear(["--checkpoint", ckpt, "--output-dir", str(lin)]) == 0
    before = _snapshot(lin)
    msg = usage_error(_linear, ["--checkpoint", ckpt, "--output-dir", str(lin)], capsys, LINEAR)
    assert "linear_final.pth" in msg and "--resume auto" in msg and "--overwrite" in msg
    assert _snapshot(lin) == before
    assert _linear(["--checkpoint", ckpt, "--output-dir", str(lin), "--overwrite"]) == 0
    (aside,) = [d for d in os.listdir(lin) if d.startswith("replaced-")]
    assert _snapshot(lin / aside) == before


def test_linear_eval_prints_its_result_on_rank_0_only(finished, tmp_path, capsys, monkeypatch):
    import infomin.pretrain.linear_eval as le

    monkeypatch.setattr(le, "run_linear_eval", lambda *a, **k: {"top1": 50.0})
    ckpt = str(finished["out"] / "model_final.pth")
    for rank, printed in (("1", ""), ("0", '{"top1": 50.0}\n')):
        monkeypatch.setenv("RANK", rank)
        capsys.readouterr()
        assert _linear(["--checkpoint", ckpt, "--output-dir", str(tmp_path / rank)]) == 0
        assert capsys.readouterr().out == printed


def test_linear_eval_on_files_that_are_not_checkpoints(finished, tmp_path, capsys):
    import pickle

    pkl, empty = tmp_path / "model.pkl", tmp_path / "empty.pth"
    import numpy as np

    pkl.write_bytes(pickle.dumps({"model": {"w": np.zeros(2)}}))  # a Detectron2-style .pkl of numpy arrays
    empty.write_bytes(b"")
    for path, reason in ((pkl, "it holds pickled Python objects"), (empty, "the file is empty"),
                         (tmp_path / "none.pth", "no such file")):
        msg = usage_error(_linear, ["--checkpoint", str(path)], capsys, LINEAR)
        assert f"{path} is not a readable infomin pretraining checkpoint: {reason}" in msg
        assert "weights_only" not in msg
    msg = usage_error(_linear, ["--checkpoint", str(finished["out"] / "model_final.pth"), "DATA.ROOT",
                                str(tmp_path / "gone"), "--output-dir", str(tmp_path / "l")], capsys, LINEAR)
    assert "DATA.ROOT" in msg and "does not exist" in msg


def test_learn_views_empty_stl10_folder_and_rerun(tmp_path, capsys):
    from infomin.cli.learn_views import main

    (tmp_path / "stl" / "stl10_binary").mkdir(parents=True)
    msg = usage_error(main, ["DATA.ROOT", str(tmp_path / "stl"), "OUTPUT_DIR", str(tmp_path / "o")], capsys,
                      "infomin-learn-views")
    assert "lacks unlabeled_X.bin" in msg and "stl10_binary.tar.gz" in msg and "download=True" not in msg
    out = tmp_path / "done"
    out.mkdir()
    (out / "generator.pt").write_bytes(b"old run")
    msg = usage_error(main, ["OUTPUT_DIR", str(out), "LEARN.STEPS", "1"], capsys, "infomin-learn-views")
    assert "generator.pt" in msg and "--overwrite" in msg
    assert _snapshot(out) == {"generator.pt": b"old run"}


def test_estimate_mi_knob_a_policy_lacks_and_rerun(tmp_path, capsys):
    from infomin.cli.estimate_mi import main

    out = tmp_path / "mi"
    msg = usage_error(main, ["--policy", "A", "--blur-prob", "0.5", "--output-dir", str(out)], capsys,
                      "infomin-estimate-mi")
    assert "--policy A with --blur-prob 0.5" in msg and "no blur stage" in msg
    assert not out.exists()  # refused before the built-in data was written
    out.mkdir()
    (out / "estimates.json").write_text("{}")
    msg = usage_error(main, ["--policy", "A", "--output-dir", str(out)], capsys, "infomin-estimate-mi")
    assert "estimates.json" in msg and "--overwrite" in msg
    assert _snapshot(out) == {"estimates.json": b"{}"}


def test_estimate_mi_shows_progress(tmp_path, capsys):
    from infomin.cli.estimate_mi import main

    data = write_imagefolder(str(tmp_path / "d"), num_classes=2, train_per_class=8, val_per_class=4, size=32)
    assert main(["--data", data, "--policy", "A", "--steps", "3", "--batch-size", "4", "--eval-batches", "1",
                 "--workers", "0", "--image-size", "32", "--output-dir", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "policy A" in err and "3/3" in err  # a tqdm bar over the critic's steps


def test_knn_monitor_names_an_unreadable_image_once_per_run(caplog):
    from infomin.pretrain import knn

    batch = {"image": torch.zeros(1), "label": torch.zeros(1), "bad": ["/d/val/a/broken.jpg"]}
    with caplog.at_level("WARNING", logger="infomin.pretrain.knn"):
        for _epoch in range(3):
            knn._unpack(dict(batch))
    assert caplog.text.count("broken.jpg") == 1


def test_ctrl_c_in_linear_eval_is_one_line_with_the_way_to_continue(finished, tmp_path, capsys, monkeypatch):
    import infomin.pretrain.linear_eval as le

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(le, "run_linear_eval", interrupted)
    with pytest.raises(SystemExit) as exc:
        _linear(["--checkpoint", str(finished["out"] / "model_final.pth"), "--output-dir", str(tmp_path / "l")])
    err = capsys.readouterr().err
    assert exc.value.code == 130 and "Traceback" not in err
    assert err.strip() == ("infomin-linear-eval: interrupted; every finished epoch is saved: continue with "
                           "--resume auto (same output dir)")


def test_infomin_debug_keeps_the_traceback_of_a_one_line_error(monkeypatch):
    monkeypatch.setenv("INFOMIN_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown arch 'resnet51'"):
        _pretrain(["--config-file", TINY, "MODEL.ARCH", "resnet51"])
