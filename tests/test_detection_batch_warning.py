"""`train_net` warns once when a published protocol trains with a global batch other than 16.

`main` runs for real (config checks, the warning, Detectron2's `launch`, the worker's
`default_setup`); only the `Trainer` is a recorder, so no training starts.
"""
import os

import pytest
import torch

import infomin.detection.train_net as train_net
import infomin.detection.cli.train_net as train_net_cli
from infomin.detection.protocol import protocol_config
from _detection_helpers import make_detection_data

COCO_CFG = "configs/detection/coco/mask_rcnn_R50_FPN_1x_coco_supervised.yaml"
STUDY_CFG = "configs/study/coco_mask_rcnn_R18_FPN.yaml"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = []  # --coco-dataset flags for the tiny data, set by the `launched` fixture
OUT = []  # OUTPUT_DIR override, set by the `launched` fixture


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return make_detection_data(str(tmp_path_factory.mktemp("d2data")), n_train=2, n_test=1,
                               coco_categories=True)


class _RecordingTrainer:
    built = []

    def __init__(self, cfg):
        self.built.append(cfg)

    def resume_or_load(self, resume):
        pass

    def train(self):
        pass

    @staticmethod
    def build_model(cfg):  # --eval-only: a stand-in model, no weights to load
        return torch.nn.Linear(1, 1)

    @staticmethod
    def test(cfg, model):
        return {}


@pytest.fixture
def launched(monkeypatch, datasets, tmp_path):
    calls = _RecordingTrainer.built = []
    monkeypatch.setattr(train_net, "Trainer", _RecordingTrainer)
    OUT[:] = ["OUTPUT_DIR", str(tmp_path / "out")]
    # the tiny data under a registered name (builtin names read $DETECTRON2_DATASETS at import)
    DATA[:] = ["--coco-dataset", "tiny_train", datasets["coco_train_json"], datasets["coco_train_images"]]
    return calls


def _main(capsys, *argv):
    flags = [a for a in argv if a.startswith("--")]
    first_opt = max(argv.index(f) + (0 if f in ("--eval-only", "--help") else 1) for f in flags) + 1
    argv = [*argv[:first_opt], *DATA, *argv[first_opt:],
            "DATASETS.TRAIN", '("tiny_train",)', "DATASETS.TEST", '("tiny_train",)', *OUT]
    code = train_net_cli.main(argv)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if "warning:" in line]


def test_smaller_batch_on_a_protocol_config_warns_once_naming_it(launched, capsys):
    code, warnings = _main(capsys, "--config-file", COCO_CFG, "MODEL.WEIGHTS", "",
                           "MODEL.DEVICE", "cpu", "SOLVER.IMS_PER_BATCH", "4")
    assert code == 0 and len(launched) == 1
    assert len(warnings) == 1
    assert COCO_CFG in warnings[0] and "global batch of 4" in warnings[0]
    assert "REFERENCE_WORLD_SIZE" in warnings[0]  # says what does not preserve the protocol


def test_reference_world_size_scaling_is_counted(launched, capsys):
    code, warnings = _main(capsys, "--config-file", COCO_CFG, "MODEL.WEIGHTS", "",
                           "MODEL.DEVICE", "cpu", "SOLVER.REFERENCE_WORLD_SIZE", "8")
    assert code == 0 and len(warnings) == 1
    assert "global batch of 2" in warnings[0] and "REFERENCE_WORLD_SIZE 8" in warnings[0]


def test_default_batch_does_not_warn(launched, capsys):
    code, warnings = _main(capsys, "--config-file", COCO_CFG, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu")
    assert code == 0 and warnings == [] and len(launched) == 1
    # a packaged name is the same protocol
    code, warnings = _main(capsys, "--config-file", "detection/coco/mask_rcnn_R50_FPN_1x_coco_supervised.yaml",
                           "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "SOLVER.IMS_PER_BATCH", "8")
    assert len(warnings) == 1 and "detection/coco/mask_rcnn_R50_FPN_1x_coco_supervised.yaml" in warnings[0]


def test_config_inheriting_from_a_protocol_warns(launched, capsys, tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(f'_BASE_: "{os.path.join(ROOT, COCO_CFG)}"\nSOLVER:\n  IMS_PER_BATCH: 8\n')
    code, warnings = _main(capsys, "--config-file", str(mine), "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu")
    assert code == 0 and len(warnings) == 1
    assert str(mine) in warnings[0] and "detection/coco/mask_rcnn_R50_FPN_1x_coco_supervised.yaml" in warnings[0]


def test_demo_configs_do_not_warn(launched, capsys):
    code, warnings = _main(capsys, "--config-file", STUDY_CFG, "MODEL.WEIGHTS", "",
                           "MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.NUM_CLASSES", "80")
    assert code == 0 and warnings == [] and len(launched) == 1
    assert protocol_config(os.path.join(ROOT, STUDY_CFG)) is None
    assert protocol_config(os.path.join(ROOT, "configs/detection/Base-RCNN-FPN-SyncBN.yaml")) is None


def test_eval_only_does_not_warn(launched, capsys):
    code, warnings = _main(capsys, "--eval-only", "--config-file", COCO_CFG, "MODEL.WEIGHTS", "",
                           "MODEL.DEVICE", "cpu", "SOLVER.IMS_PER_BATCH", "2")
    assert code == 0 and warnings == []


def test_help_says_what_keeps_the_protocol(capsys):
    with pytest.raises(SystemExit):
        train_net_cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "one GPU with enough memory running SOLVER.IMS_PER_BATCH 16" in out
    assert "SOLVER.REFERENCE_WORLD_SIZE" in out and "schedule in epochs" in out
