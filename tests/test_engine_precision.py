"""MODEL.PRECISION reaches the training step: the encoders compute in the chosen dtype.

Oracle: a forward hook on the first convolution of the online and the momentum encoder records
the dtype of what the convolution produced during a real `run_pretraining` (tiny InfoMin, CPU).
Under bf16 autocast a convolution returns bfloat16; in fp32 it returns float32. A bf16 run that
silently trained in fp32 (precision resolved to None, or the step not entered under autocast)
shows float32 here.
"""
import pytest
import torch

import infomin.pretrain.build as build
from infomin.pretrain.config import load_cfg
from infomin.datasets import write_imagefolder
from infomin.pretrain.engine import run_pretraining

from _pretrain_helpers import TINY, one_thread, tiny_opts


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_imagefolder(str(tmp_path_factory.mktemp("gen")), num_classes=2,
                                      train_per_class=4, val_per_class=1, size=48)


def _record_conv_dtypes(monkeypatch) -> dict:
    """Hook conv1 of both encoders of the method the engine builds; returns name -> [dtypes]."""
    seen = {"encoder": [], "encoder_ema": []}
    real = build.build_method

    def build_and_hook(*args, **kwargs):
        method = real(*args, **kwargs)
        for name, dtypes in seen.items():
            getattr(method, name).conv1.register_forward_hook(
                lambda module, inputs, output, dtypes=dtypes: dtypes.append(output.dtype))
        return method

    monkeypatch.setattr(build, "build_method", build_and_hook)
    return seen


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32),
                                              ("auto", torch.float32)])  # auto on a CPU is fp32
def test_training_step_computes_in_the_configured_precision(precision, dtype, root, tmp_path, monkeypatch):
    seen = _record_conv_dtypes(monkeypatch)
    opts = tiny_opts(root, tmp_path, "MODEL.PRECISION", precision, "MODEL.QUEUE_SIZE", 16,
                     "SOLVER.IMS_PER_BATCH", 4, "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 2,
                     "LOG.TENSORBOARD", "False")
    with one_thread():
        run_pretraining(load_cfg(TINY, opts))
    # 2 steps; the online encoder also embeds the jigsaw tiles, so it runs twice per step
    assert seen["encoder"] == [dtype] * 4
    assert seen["encoder_ema"] == [dtype] * 2
