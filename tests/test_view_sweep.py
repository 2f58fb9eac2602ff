"""View sweep end to end on generated data: engine pretraining + linear probe + I_NCE per value."""
import csv
import json
import math

import pytest
from PIL import Image

from infomin.pretrain import view_sweep
from infomin.pretrain.cli import view_sweep as view_sweep_cli


TINY = ["--config-file", "configs/views/sweep_moco_R18_tiny.yaml", "--mi-steps", "4", "--mi-batch", "8",
        "--mi-eval-batches", "2", "--mi-arch", "convnet", "--mi-width", "0.25", "--device", "cpu"]
# engine overrides come last: everything after the first KEY is a KEY VALUE pair
ENGINE_OPTS = ["SOLVER.EPOCHS", "1", "SOLVER.ITERS_PER_EPOCH", "2", "SOLVER.IMS_PER_BATCH", "8",
        "LINEAR.EPOCHS", "1", "LINEAR.ITERS_PER_EPOCH", "2", "LINEAR.IMS_PER_BATCH", "8",
        "MODEL.QUEUE_SIZE", "16", "VIEWS.IMAGE_SIZE", "24"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from infomin.datasets.builtin import generate

    root = tmp_path_factory.mktemp("sweepdata") / "data"
    built = generate(root, scale="quick", overrides={"cls_train": 4, "cls_val": 4, "det_train": 1,
                                                     "det_test": 1}, progress=False)
    return str(root / "imagefolder"), built


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_sweep_two_values_writes_csv_plot_and_resumes(tmp_path, data_root, monkeypatch, capsys):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[1])
    out = tmp_path / "sweep"
    argv = TINY + ["--knob", "crop_min", "--values", "0.2,0.8", "--data", data_root[0],
                   "--output-dir", str(out)] + ENGINE_OPTS
    assert view_sweep_cli.main(argv) == 0
    rows = _rows(out / "sweep.csv")
    assert [float(r["value"]) for r in rows] == [0.2, 0.8]
    for r in rows:
        assert 0 <= float(r["accuracy"]) <= 100 and int(r["k"]) == 8
        assert float(r["i_nce"]) <= float(r["log_k"]) + 1e-6
        assert int(r["pretrain_k"]) == 17 and float(r["pretrain_i_nce"]) <= math.log(17)
    with Image.open(out / "sweep.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    # the knob reached the engine: each point's saved config has its own crop lower bound
    assert "CROP_MIN: 0.8" in (out / "crop_min=0.8" / "config.yaml").read_text()
    first = (out / "points" / "crop_min=0.2.json").stat().st_mtime_ns
    capsys.readouterr()
    assert view_sweep_cli.main(argv) == 0  # resumed: nothing recomputed
    assert capsys.readouterr().out.count("done earlier") == 2
    assert (out / "points" / "crop_min=0.2.json").stat().st_mtime_ns == first
    with pytest.raises(SystemExit):  # a changed budget must not reuse the finished points
        view_sweep_cli.main([a if a != "4" else "5" for a in argv])
    assert "other settings (differs in ['mi_steps'])" in capsys.readouterr().err


def test_bad_sweep_requests_fail_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit):
        view_sweep_cli.main(["--knob", "crop_min", "--values", "a,b", "--config-file", "x.yaml"])
    assert "must be numbers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        view_sweep_cli.main(["--knob", "crop_min", "--values", "0.2"])
    assert "--config-file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        view_sweep_cli.main(["--knob", "crop_min", "--values", "0.2", "--config-file", "c.yaml",
                         "--data", str(tmp_path)])
    assert "no train/" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        view_sweep_cli.main(["--knob", "crop_min", "--values", "0.2", "--config-file", "c.yaml",
                             "--data", str(tmp_path), "--builtin", "solid"])
    assert "--builtin solid picks the generated data; --data" in capsys.readouterr().err
    assert view_sweep.parse_values("color_split", "RGB, Lab") == ["RGB", "Lab"]


def test_color_split_point(tmp_path, data_root):
    out = tmp_path / "colors"
    argv = ["--knob", "color_split", "--values", "YDbDr", "--data", data_root[0], "--output-dir", str(out),
            "--mi-steps", "3", "--mi-batch", "8", "--mi-eval-batches", "1", "--mi-arch", "convnet",
            "--mi-width", "0.25", "--device", "cpu", "DATA.IMAGE_SIZE", "16", "DATA.NUM_WORKERS", "0",
            "EVAL.PROBE_EPOCHS", "2", "EVAL.HELDOUT_FRACTION", "0.4"]
    assert view_sweep_cli.main(argv) == 0
    row = json.loads((out / "points" / "color_split=YDbDr.json").read_text())
    assert row["value"] == "YDbDr" and row["k"] == 8 and 0 <= row["accuracy"] <= 100


def test_patch_pair_centres_are_the_requested_distance_apart():
    import math

    import numpy as np

    xs, ys = np.meshgrid(np.arange(60), np.arange(50))  # R = 4x, G = 5y: pixels say where they are
    img = Image.fromarray(np.stack([xs * 4, ys * 5, np.zeros_like(xs)], -1).astype(np.uint8))

    def corner(t):  # undo the ImageNet Normalize on the top-left pixel
        r, g = (float(t[c, 0, 0]) * std + mean for c, mean, std in ((0, 0.485, 0.229), (1, 0.456, 0.224)))
        return round(r * 255 / 4), round(g * 255 / 5)

    for d in (0, 7, 20):
        pair = view_sweep.PatchPair(16, d)
        for _ in range(10):
            out = pair(img)
            assert out["view1"].shape == (3, 16, 16)
            (x1, y1), (x2, y2) = corner(out["view1"]), corner(out["view2"])
            assert abs(math.hypot(x2 - x1, y2 - y1) - d) <= 1.0
    with pytest.raises(ValueError, match="do not fit"):
        view_sweep.PatchPair(16, 200)(img)


def test_patch_distance_point(tmp_path, data_root):
    out = tmp_path / "patches"
    argv = ["--knob", "patch_distance", "--values", "4", "--data", data_root[0], "--output-dir", str(out),
            "--patch-size", "16", "--mi-steps", "2", "--mi-batch", "8", "--mi-eval-batches", "1",
            "--mi-arch", "convnet", "--mi-width", "0.25", "--device", "cpu"]
    assert view_sweep_cli.main(argv) == 0
    row = _rows(out / "sweep.csv")[0]
    assert row["knob"] == "patch_distance" and float(row["value"]) == 4.0 and int(row["k"]) == 8


def test_paper_protocol_configs_load_as_stated():
    import glob
    from pathlib import Path

    from infomin.pretrain.config import load_cfg
    from infomin.viewlearn import load_cfg as load_views_cfg

    here = Path(__file__).resolve().parents[1] / "configs" / "views"
    for name in ("sweep_crop_min_moco_R50_100ep.yaml", "sweep_jitter_moco_R50_100ep.yaml"):
        cfg = load_cfg(str(here / name))
        assert (cfg.MODEL.METHOD, cfg.MODEL.ARCH, cfg.SOLVER.EPOCHS, cfg.LINEAR.EPOCHS) == ("MoCo", "resnet50", 100, 60)
    assert load_cfg(str(here / "sweep_jitter_moco_R50_100ep.yaml")).VIEWS.POLICY == "B"
    stl = sorted(glob.glob(str(here / "stl10_*.yaml")))
    modes = set()
    for path in stl:
        cfg = load_views_cfg(path)
        assert cfg.DATA.FORMAT == "stl10" and cfg.DATA.IMAGE_SIZE == 64 and cfg.EVAL.COMPARE_RAW
        modes.add((cfg.LEARN.MODE, cfg.GENERATOR.KIND, cfg.DATA.COLOR_SPACE))
    assert {("unsupervised", "vp", "RGB"), ("semi", "vp", "RGB"), ("semi", "nvp", "RGB"),
            ("supervised", "vp", "RGB"), ("semi", "vp", "YDbDr")} <= modes


def test_simclr_point_reads_its_in_batch_k_from_the_log(tmp_path, data_root, monkeypatch):
    """The CPU sweep's config (SimCLR, no queue) end to end at a toy size: the pretraining I_NCE
    is log(K) - loss with K = 2N - 1 of the global batch of N = 8 (14 negatives + the positive)."""
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[1])
    out = tmp_path / "simclr"
    argv = [*TINY, "--config-file", "configs/views/sweep_simclr_R18_cpu.yaml", "--knob", "crop_min",
            "--values", "0.3", "--data", data_root[0], "--output-dir", str(out),
            *[a for a in ENGINE_OPTS if a not in ("MODEL.QUEUE_SIZE", "16")]]
    assert view_sweep_cli.main(argv) == 0
    (row,) = _rows(out / "sweep.csv")
    assert int(row["pretrain_k"]) == 15 and float(row["pretrain_i_nce"]) <= math.log(15)
    assert "negatives" in (out / "crop_min=0.3" / "metrics.jsonl").read_text()
