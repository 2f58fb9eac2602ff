"""Every mistake a user can make with `infomin-train-net` gets one `PROG: error: ...` line, exit
status 2, no traceback, before any worker starts, and nothing on disk is touched.

Most cases run `main` in this process (as the console script does) with Detectron2's `launch`
replaced by a recorder, so "refused before any worker" is observable; the ones that depend on the
process (import-time warnings, builtin dataset roots, the terminal/log split) run
`tools/train_net.py` in a subprocess.
"""
import os
import pickle
import subprocess
import sys

import pytest
import torch

import infomin.detection.cli.train_net as cli
from infomin.convert import convert_checkpoint
from infomin.models import build_encoder
from _detection_helpers import make_detection_data
from _zoo_helpers import closed_port_url, entry, write_catalog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOC_C4 = "detection/voc/faster_rcnn_R50_C4_24k_voc0712_infomin.yaml"
STUDY_VOC = "study/voc_faster_rcnn_R18_FPN.yaml"
FPN_SUPERVISED = "detection/coco/mask_rcnn_R50_FPN_1x_coco_supervised.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_detection_data(str(tmp_path_factory.mktemp("d2data")), n_train=2, n_test=2)


@pytest.fixture(scope="module")
def r18_quarter(tmp_path_factory):
    """A ResNet-18 at width 0.25 converted by the project's converter (the reported file)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(build_encoder("resnet18", 0.25).state_dict(), folder / "r18.pth")
    convert_checkpoint(str(folder / "r18.pth"), str(folder / "r18.pkl"))
    return str(folder / "r18.pkl")


@pytest.fixture
def launches(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "launch", lambda *a, **k: calls.append((a, k)))
    return calls


def _voc(data, name="mine"):
    return ["--voc-dataset", f"{name}_trainval", data["voc_dir"], "trainval", "2007",
            "--voc-dataset", f"{name}_test", data["voc_dir"], "test", "2007"]


def _voc_opts(name="mine"):
    return ["DATASETS.TRAIN", f'("{name}_trainval",)', "DATASETS.TEST", f'("{name}_test",)',
            "MODEL.ROI_HEADS.NUM_CLASSES", "2", "MODEL.DEVICE", "cpu"]


def _main(capsys, argv):
    code = cli.main(argv)
    return code, capsys.readouterr().err


def _one_error(err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, err
    return lines[0]


def _tool(args, env=None, check=None):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_net.py"), *args],
                          cwd=ROOT, env=dict(os.environ, **(env or {})), capture_output=True,
                          text=True, timeout=600)
    if check is not None:
        assert proc.returncode == check, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# -- 1. weights that do not fit the model -------------------------------------------------------

def test_r18_quarter_on_the_r50_c4_config_is_refused_naming_the_settings(data, r18_quarter, tmp_path):
    out = tmp_path / "out"
    proc = _tool([*_voc(data), "--config-file", VOC_C4, "MODEL.WEIGHTS", r18_quarter,
                  *_voc_opts(), "OUTPUT_DIR", str(out)])
    assert proc.returncode == 2
    line = _one_error(proc.stderr)
    assert "does not fit the backbone" in line and "res2.0.conv1.weight" in line
    for setting in ("MODEL.RESNETS.DEPTH 18", "MODEL.RESNETS.RES2_OUT_CHANNELS 16",
                    "MODEL.RESNETS.STEM_OUT_CHANNELS 64", "MODEL.RESNETS.STRIDE_IN_1X1 False"):
        assert setting in line
    assert "C4 models cannot use" in line
    assert not out.exists() and "FutureWarning" not in proc.stderr


def test_weights_that_fit_pass_and_a_detectron2_checkpoint_is_checked_too(tmp_path):
    from detectron2.modeling import build_model

    from infomin.detection.config import get_cfg
    from infomin.detection.preflight import check_weights_fit

    torch.manual_seed(0)
    torch.save(build_encoder("resnet50", 0.25).state_dict(), tmp_path / "r50q.pth")
    pkl = str(tmp_path / "r50q.pkl")
    convert_checkpoint(str(tmp_path / "r50q.pth"), pkl)
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.RESNETS.DEPTH", "50",
                         "MODEL.RESNETS.WIDTH_PER_GROUP", "16", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
                         "MODEL.RESNETS.STRIDE_IN_1X1", "False"])
    check_weights_fit(cfg, pkl)  # the settings the message names make the weights fit
    # a fine-tuned Detectron2 checkpoint of that model (heads included) fits it too ...
    model = build_model(cfg)
    torch.save({"model": model.state_dict(), "iteration": 3}, tmp_path / "model_final.pth")
    check_weights_fit(cfg, str(tmp_path / "model_final.pth"))
    # ... and not a deeper one; heads may be missing, backbone tensors may not
    deeper = cfg.clone()
    deeper.MODEL.RESNETS.DEPTH = 101
    with pytest.raises(ValueError, match="resnet50x0.25; add: MODEL.RESNETS.DEPTH 50"):
        check_weights_fit(deeper, str(tmp_path / "model_final.pth"))
    heads_only = {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    torch.save({"model": heads_only}, tmp_path / "heads.pth")
    with pytest.raises(ValueError, match="holds no complete ResNet backbone"):
        check_weights_fit(cfg, str(tmp_path / "heads.pth"))
    (tmp_path / "truncated.pkl").write_bytes(pickle.dumps({"model": {}})[:5])
    with pytest.raises(ValueError, match="is not a checkpoint Detectron2 can read"):
        check_weights_fit(cfg, str(tmp_path / "truncated.pkl"))
    backbone_only = {k: v for k, v in model.state_dict().items()
                     if k.startswith(("backbone.", "roi_heads.res5."))}  # C4: res5 is in the heads
    torch.save({"model": backbone_only}, tmp_path / "backbone.pth")
    check_weights_fit(cfg, str(tmp_path / "backbone.pth"))


# -- 3. a rerun never overwrites a finished run -------------------------------------------------

def test_rerun_into_a_finished_run_is_refused_unless_resume_or_overwrite(data, tmp_path, capsys, launches):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"finished weights")
    (out / "last_checkpoint").write_text("model_final.pth")
    base = [*_voc(data, "rerun"), "--config-file", STUDY_VOC]
    opts = ["MODEL.WEIGHTS", "", *_voc_opts("rerun"), "OUTPUT_DIR", str(out)]
    code, err = _main(capsys, [*base, *opts])
    line = _one_error(err)
    assert code == 2 and not launches
    assert "already holds a run" in line and "--resume" in line and "OUTPUT_DIR" in line and "--overwrite" in line
    assert (out / "model_final.pth").read_bytes() == b"finished weights"
    for flag in ("--resume", "--overwrite", "--eval-only"):
        assert _main(capsys, [*base, flag, *opts])[0] == 0
    assert len(launches) == 3 and launches[1][1]["args"][0].overwrite


# -- 4. weights that need the network are resolved up front -------------------------------------

def test_offline_infomin_weights_name_url_file_and_cache_path(data, tmp_path, capsys, launches, monkeypatch):
    url = closed_port_url("/InfoMin_test.pth")
    monkeypatch.setenv("INFOMIN_ZOO_CATALOG", write_catalog(tmp_path / "cat.yaml", {
        "InfoMin_test": entry("InfoMin_test.pth", [url])}))
    monkeypatch.setenv("INFOMIN_CACHE", str(tmp_path / "cache"))
    code, err = _main(capsys, [*_voc(data, "zoo"), "--config-file", STUDY_VOC,
                               "MODEL.WEIGHTS", "infomin://InfoMin_test", *_voc_opts("zoo"),
                               "OUTPUT_DIR", str(tmp_path / "out")])
    assert code == 2 and not launches and "Traceback" not in err
    assert err.startswith("train_net.py: error: MODEL.WEIGHTS infomin://InfoMin_test could not be fetched") \
        or ": error: MODEL.WEIGHTS infomin://InfoMin_test could not be fetched" in err.splitlines()[0]
    assert url in err and "InfoMin_test.pth" in err
    assert str(tmp_path / "cache" / "zoo" / "InfoMin_test" / "InfoMin_test.pth") in err
    assert not (tmp_path / "out").exists()


def test_offline_detectron2_weights_name_url_and_the_cache_detectron2_reads(
        data, tmp_path, capsys, launches, monkeypatch):
    from detectron2.utils.file_io import Detectron2Handler, PathManager

    base = closed_port_url("/detectron2/")
    monkeypatch.setattr(Detectron2Handler, "S3_DETECTRON2_PREFIX", base)
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "fvcore"))
    weights = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    code, err = _main(capsys, [*_voc(data, "d2"), "--config-file", FPN_SUPERVISED,
                               "MODEL.WEIGHTS", weights, *_voc_opts("d2"),
                               "OUTPUT_DIR", str(tmp_path / "out")])
    bar_free = [part for part in err.replace("\r", "\n").splitlines() if "B/s]" not in part]
    line = _one_error("\n".join(bar_free))  # iopath's progress bar is drawn before the failure
    assert code == 2 and not launches
    assert base + "ImageNetPretrained/MSRA/R-50.pkl" in line and "R-50.pkl" in line
    cached = tmp_path / "fvcore" / "detectron2" / "ImageNetPretrained" / "MSRA" / "R-50.pkl"
    assert f"put it at exactly {cached} " in line
    # the oracle: a file put there is what Detectron2's PathManager then resolves, offline
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(pickle.dumps({"blobs": {}}))
    assert PathManager.get_local_path(weights) == str(cached)


# -- 5. one error style ---------------------------------------------------------------------------

def test_a_pretraining_config_is_named_as_such():
    proc = _tool(["--config-file", "pretrain/infomin_R18_tiny.yaml"], check=2)
    line = _one_error(proc.stderr)
    assert "is a pretraining config" in line and "infomin-pretrain --config-file pretrain/infomin_R18_tiny.yaml" in line
    assert "KeyError" not in proc.stderr and "FutureWarning" not in proc.stderr


@pytest.mark.parametrize("opts, words", [
    (["MODEL.DEVICE", "cuda"], "MODEL.DEVICE is 'cuda' but no CUDA GPU"),
    (["MODEL.DEVICE", "cuda", "SOLVER.AMP.ENABLED", "True"], "SOLVER.AMP.ENABLED is True but no CUDA device"),
])
def test_gpu_settings_without_a_gpu_are_one_line(data, tmp_path, capsys, launches, opts, words, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = _main(capsys, [*_voc(data, "gpu"), "--config-file", STUDY_VOC, "MODEL.WEIGHTS", "",
                               *_voc_opts("gpu"), *opts, "OUTPUT_DIR", str(tmp_path / "o")])
    assert code == 2 and words in _one_error(err) and not launches


# -- 6. dataset checks match what runs ------------------------------------------------------------

def test_eval_only_needs_no_training_set(data, tmp_path, capsys, launches):
    # the config trains on a builtin VOC 2012 name whose folder does not exist here
    test_only = ["--voc-dataset", "ev_test", data["voc_dir"], "test", "2007", "--config-file", STUDY_VOC]
    opts = ["MODEL.WEIGHTS", "", "DATASETS.TRAIN", '("voc_2012_trainval",)', "DATASETS.TEST",
            '("ev_test",)', "MODEL.ROI_HEADS.NUM_CLASSES", "2", "MODEL.DEVICE", "cpu",
            "OUTPUT_DIR", str(tmp_path / "o")]
    code, err = _main(capsys, [*test_only, "--eval-only", *opts])
    assert code == 0 and len(launches) == 1, err
    code, err = _main(capsys, [*test_only, *opts])  # training does need it
    assert code == 2 and "voc_2012_trainval" in _one_error(err) and len(launches) == 1


def test_coco_tree_with_other_classes_fails_the_precheck(data, tmp_path):
    # the helper's COCO tree has 2 categories (square, disc), not COCO's 80
    proc = _tool(["--config-file", "detection/coco/mask_rcnn_R50_FPN_1x_coco_random.yaml",
                  "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / "o")],
                 env={"DETECTRON2_DATASETS": data["root"]}, check=2)
    line = _one_error(proc.stderr)
    assert "'coco_2017_train'" in line and "2 categories (square, disc)" in line
    assert "--coco-dataset NAME JSON IMAGE_ROOT" in line and "MODEL.ROI_HEADS.NUM_CLASSES 2" in line
    assert "thing_classes" not in proc.stderr and not (tmp_path / "o").exists()


# -- 7. quiet where nothing is wrong ---------------------------------------------------------------

def test_a_tiny_run_is_quiet_and_keeps_the_full_log(data, tmp_path):
    out = tmp_path / "out"
    args = [*_voc(data), "--config-file", STUDY_VOC, "MODEL.WEIGHTS", "", *_voc_opts(),
            "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "(1,)", "SOLVER.IMS_PER_BATCH", "2",
            "DATALOADER.NUM_WORKERS", "0", "TEST.PRECISE_BN.ENABLED", "False", "OUTPUT_DIR", str(out)]
    proc = _tool(args, check=0)
    assert "Warning" not in proc.stderr and "warn" not in proc.stderr.lower(), proc.stderr
    assert "WARNING" not in proc.stdout and "No CUDA runtime" not in proc.stdout + proc.stderr
    for dump in ("Environment info:", "Running with full config:", "Contents of args.config_file", "Model:\n"):
        assert dump not in proc.stdout
    log = (out / "log.txt").read_text()
    for dump in ("Environment info:", "Running with full config:", "GeneralizedRCNN("):
        assert dump in log
    assert "copypaste: AP,AP50,AP75" in proc.stdout
    # a rerun is refused and leaves the finished run as it was
    final = (out / "model_final.pth").read_bytes()
    again = _tool(args, check=2)
    assert "already holds a run" in _one_error(again.stderr)
    assert (out / "model_final.pth").read_bytes() == final


def test_voc_evaluator_is_silent_for_a_class_without_ground_truth(data, recwarn):
    import numpy as np
    from detectron2.structures import Boxes, Instances

    from infomin.detection import build_evaluator, register_voc_folder

    register_voc_folder("nogt_test", data["voc_dir"], "test", 2007,
                        class_names=("square", "disc", "triangle"))
    from infomin.detection.config import get_cfg

    evaluator = build_evaluator(get_cfg(), "nogt_test")
    evaluator.reset()
    ids = open(os.path.join(data["voc_dir"], "ImageSets", "Main", "test.txt")).read().split()
    for image_id in ids:
        inst = Instances((96, 128))
        inst.pred_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 20.0, 90.0, 60.0]]))
        inst.scores = torch.tensor([0.9, 0.8])
        inst.pred_classes = torch.tensor([0, 2])  # one prediction for the class with no boxes
        evaluator.process([{"image_id": image_id}], [{"instances": inst}])
    with np.errstate(all="warn"):
        result = evaluator.evaluate()
    assert "bbox" in result
    assert not [w for w in recwarn if "divide" in str(w.message)]
