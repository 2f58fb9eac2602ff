"""A C4 and an FPN config train a few iterations on generated COCO- and VOC-layout data, through
`infomin.detection.train_net.run` (our Trainer, PreciseBN on), then evaluate with the real COCO
and VOC evaluators. Widths are tiny; the structure (ExtraNorm, 4conv1fc, mask head) is the config's.
"""
import math
import uuid

import pytest
from detectron2.engine import hooks

from infomin.detection import Res5ROIHeadsExtraNorm, register_coco_folder, register_voc_folder
from infomin.detection.cli.train_net import build_parser
from infomin.detection.train_net import run
from _detection_helpers import TINY_MODEL, TINY_RUN, make_detection_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    paths = make_detection_data(str(tmp_path_factory.mktemp("det_train")), n_train=4, n_test=2)
    tag = uuid.uuid4().hex[:8]
    paths["coco"] = (
        register_coco_folder(f"tiny_coco_train_{tag}", paths["coco_train_json"], paths["coco_train_images"]),
        register_coco_folder(f"tiny_coco_val_{tag}", paths["coco_val_json"], paths["coco_val_images"]),
    )
    paths["voc"] = (
        register_voc_folder(f"tiny_voc_trainval_{tag}", paths["voc_dir"], "trainval", 2007),
        register_voc_folder(f"tiny_voc_test_{tag}", paths["voc_dir"], "test", 2007),
    )
    return paths


CASES = [
    # (config, layout, extra overrides, expected metrics)
    ("configs/detection/coco/mask_rcnn_R50_C4_1x_coco_infomin.yaml", "coco", [], ["bbox/AP", "segm/AP"]),
    ("configs/detection/voc/faster_rcnn_R50_C4_24k_voc0712_infomin.yaml", "voc", [], ["bbox/AP50", "bbox/AP"]),
    ("configs/detection/coco/faster_rcnn_R50_FPN_1x_coco_infomin.yaml", "voc", [], ["bbox/AP50"]),
    # FPN with masks on COCO layout: tests/test_detection_cli.py, through the command line
]


@pytest.mark.slow
@pytest.mark.parametrize("config,layout,extra,metrics", CASES,
                         ids=["C4-mask-coco", "C4-voc", "FPN-voc"])
def test_train_then_evaluate(data, tmp_path, config, layout, extra, metrics):
    train, test = data[layout]
    args = build_parser().parse_args([
        "--config-file", config, "MODEL.WEIGHTS", "", "OUTPUT_DIR", str(tmp_path),
        "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)",
        *TINY_MODEL, *TINY_RUN, *extra,
    ])
    trainer = run(args)
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 2
    assert all(math.isfinite(loss) for loss, _ in losses)
    if "C4" in config:
        assert isinstance(trainer.model.roi_heads, Res5ROIHeadsExtraNorm)
    # PreciseBN is among the trainer's hooks, as Detectron2 builds them (the model has BN)
    assert any(isinstance(hook, hooks.PreciseBN) for hook in trainer.build_hooks() if hook)
    latest = trainer.storage.latest()
    for metric in metrics:
        value, _ = latest[metric]
        assert 0.0 <= value <= 100.0, (metric, value)


@pytest.mark.slow
def test_amp_on_the_cpu_trains_in_bfloat16_and_evaluates_in_float32(data, tmp_path):
    """SOLVER.AMP.ENABLED on the CPU: the training forward runs under bfloat16 autocast (the CPU's
    mixed precision; Detectron2's AMPTrainer is CUDA only), evaluation in float32, and the saved
    config keeps the user's setting."""
    import torch
    from detectron2.utils.events import EventStorage

    train, test = data["voc"]
    args = build_parser().parse_args([
        "--config-file", "configs/detection/coco/faster_rcnn_R50_FPN_1x_coco_infomin.yaml",
        "MODEL.WEIGHTS", "", "OUTPUT_DIR", str(tmp_path), "MODEL.DEVICE", "cpu", "SOLVER.AMP.ENABLED", "True",
        "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)", *TINY_MODEL, *TINY_RUN,
    ])
    trainer = run(args)
    assert all(math.isfinite(loss) for loss, _ in trainer.storage.history("total_loss").values())
    assert trainer.cfg.SOLVER.AMP.ENABLED

    model, seen = trainer.model, []
    handle = model.backbone.bottom_up.stem.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    from detectron2.data import DatasetCatalog, DatasetMapper

    batch = [DatasetMapper(trainer.cfg, is_train=True)(DatasetCatalog.get(train)[0])]
    try:
        with EventStorage(0):
            model.train()
            losses = model(batch)
            model.eval()
            with torch.no_grad():
                model([{"image": batch[0]["image"]}])
    finally:
        handle.remove()
    assert seen == [torch.bfloat16, torch.float32]
    assert all(v.dtype == torch.float32 for v in losses.values())  # Detectron2's losses: float32 ops
    assert all(p.dtype == torch.float32 for p in model.parameters())
