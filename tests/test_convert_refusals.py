"""Every file the converter refuses: a clear message, a non-zero exit, and no output file."""
import argparse
import os

import pytest
import torch

from infomin.convert import ConversionError, convert_checkpoint
from infomin.cli.convert_pretrained import main

from _convert_helpers import random_resnet, save_checkpoint


@pytest.fixture(scope="module")
def resnet18():
    return random_resnet("resnet18", seed=3)


@pytest.fixture(scope="module")
def tv_state(resnet18):
    return {k: v.clone() for k, v in resnet18.state_dict().items()}


@pytest.fixture(scope="module")
def good_file(tmp_path_factory, resnet18):
    path = tmp_path_factory.mktemp("good") / "resnet18.pth"
    save_checkpoint(resnet18, "torchvision", path)
    return path


def refuse(tmp_path, src, match, capsys, *args):
    """Both the API and the CLI refuse `src` with `match`, leaving nothing in the output folder."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    dst = out / "model.pkl"
    flags = {"--ema": {"ema": True}, "--trust": {"trust": True}}
    kwargs = {k: v for a in args if a in flags for k, v in flags[a].items()}
    fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), None)
    with pytest.raises(ConversionError, match=match):
        convert_checkpoint(str(src), str(dst), fmt=fmt, **kwargs)
    assert main([str(src), str(dst), *args]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "No output file was written" in err
    assert os.listdir(out) == []  # no output, no temp file
    return err


def test_file_with_no_resnet_backbone(tmp_path, capsys):
    vit = {"cls_token": torch.zeros(1, 1, 8), "blocks.0.attn.qkv.weight": torch.zeros(24, 8)}
    torch.save({"state_dict": vit, "epoch": 1}, tmp_path / "vit.pth")
    refuse(tmp_path, tmp_path / "vit.pth", "no ResNet backbone found", capsys)
    torch.save({"state_dict": {"module.encoder_q.blocks.0.weight": torch.zeros(2)}}, tmp_path / "v3.pth")
    refuse(tmp_path, tmp_path / "v3.pth", "no ResNet backbone in this moco checkpoint", capsys)
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    refuse(tmp_path, tmp_path / "list.pth", "not a checkpoint dictionary", capsys)


def test_forced_format_that_does_not_fit(tmp_path, good_file, capsys):
    refuse(tmp_path, good_file, "not a moco checkpoint.*state_dict", capsys, "--format=moco")


def test_truncated_and_non_checkpoint_files(tmp_path, good_file, capsys):
    data = good_file.read_bytes()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    refuse(tmp_path, tmp_path / "half.pth", "not a readable PyTorch checkpoint: it is truncated", capsys)
    (tmp_path / "notes.txt").write_text("hello\n")
    refuse(tmp_path, tmp_path / "notes.txt", "not a readable PyTorch checkpoint", capsys)
    (tmp_path / "empty.pth").write_bytes(b"")
    refuse(tmp_path, tmp_path / "empty.pth", "is empty", capsys)
    refuse(tmp_path, tmp_path / "absent.pth", "no such file", capsys)


def test_backbone_with_missing_tensors(tmp_path, tv_state, capsys):
    state = dict(tv_state)
    del state["layer3.1.conv2.weight"], state["layer3.1.bn2.running_var"]
    torch.save(state, tmp_path / "holes.pth")
    err = refuse(tmp_path, tmp_path / "holes.pth", "missing 2 of its", capsys)
    assert "layer3.1.conv2.weight" in err and "layer3.1.bn2.running_var" in err
    state = {k: v for k, v in tv_state.items() if not k.startswith("layer4.1.")}
    torch.save(state, tmp_path / "noblock.pth")
    refuse(tmp_path, tmp_path / "noblock.pth", r"\[2, 2, 2, 1\] basic blocks, which is no ResNet depth", capsys)
    state = dict(tv_state, **{"layer2.0.conv1.weight": torch.zeros(128, 64, 1, 1)})
    torch.save(state, tmp_path / "shape.pth")
    refuse(tmp_path, tmp_path / "shape.pth", r"layer2.0.conv1.weight \(128, 64, 1, 1\) \(expected \(128, 64, 3, 3\)\)", capsys)


def test_resnet_variant_with_extra_tensors(tmp_path, tv_state, capsys):
    state = dict(tv_state, **{"layer1.0.se.fc1.weight": torch.zeros(4, 64)})
    torch.save(state, tmp_path / "se.pth")
    refuse(tmp_path, tmp_path / "se.pth", "tensors a torchvision ResNet does not have.*layer1.0.se.fc1.weight", capsys)


def test_file_that_needs_full_unpickling_requires_trust(tmp_path, tv_state, capsys):
    src = tmp_path / "ns.pth"
    torch.save({"state_dict": tv_state, "args": argparse.Namespace(lr=0.1)}, src)
    err = refuse(tmp_path, src, "argparse.Namespace", capsys)
    assert "--trust" in err
    summary = convert_checkpoint(str(src), str(tmp_path / "trusted.pkl"), trust=True)
    assert summary.arch.name == "resnet18" and "args" in summary.ignored


def test_cmc_two_stream_checkpoints(tmp_path, tv_state, capsys):
    pyc = {"model": {**{f"module.encoder1.{k}": v for k, v in tv_state.items()},
                     **{f"module.encoder2.{k}": v for k, v in tv_state.items()}}}
    torch.save(pyc, tmp_path / "cmc.pth")
    refuse(tmp_path, tmp_path / "cmc.pth", "CMC two-stream checkpoint", capsys)
    ours = {"format": "infomin.pretrain", "model": {f"encoder.l.{k}": v for k, v in tv_state.items()}}
    torch.save(ours, tmp_path / "cmc_ours.pth")
    refuse(tmp_path, tmp_path / "cmc_ours.pth", r"CMC two-stream checkpoint \(encoder.l.\*", capsys)


def test_ema_without_a_momentum_encoder(tmp_path, good_file, tv_state, capsys):
    refuse(tmp_path, good_file, "single network, there is no momentum encoder", capsys, "--ema")
    torch.save({"model": {f"module.encoder.{k}": v for k, v in tv_state.items()}}, tmp_path / "bank.pth")
    refuse(tmp_path, tmp_path / "bank.pth", "has no model_ema", capsys, "--ema")
    ours = {"format": "infomin.pretrain", "method": "InsDis", "model_ema": None,
            "model": {f"encoder.{k}": v for k, v in tv_state.items()}}
    torch.save(ours, tmp_path / "insdis.pth")
    refuse(tmp_path, tmp_path / "insdis.pth", r"InsDis keeps no encoder_ema", capsys, "--ema")


def test_bad_output_paths(tmp_path, good_file, capsys):
    with pytest.raises(ConversionError, match=r"must end in .pkl.*model.pkl"):
        convert_checkpoint(str(good_file), str(tmp_path / "model.pth"))
    with pytest.raises(ConversionError, match="does not exist; create it first"):
        convert_checkpoint(str(good_file), str(tmp_path / "nowhere" / "model.pkl"))
    assert main([str(good_file), str(tmp_path / "model.pth")]) == 2
    assert "must end in .pkl" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == []


def test_failed_write_leaves_the_previous_output_untouched(tmp_path, good_file, monkeypatch):
    dst = tmp_path / "model.pkl"
    dst.write_bytes(b"previous")

    def dump_then_fail(obj, f, protocol=None):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("infomin.convert.writer.pickle.dump", dump_then_fail)
    with pytest.raises(ConversionError, match="could not write.*No space left"):
        convert_checkpoint(str(good_file), str(dst))
    assert dst.read_bytes() == b"previous" and os.listdir(tmp_path) == ["model.pkl"]
