"""One device reading for every tool (`infomin.device.resolve_device`) and the engine's
per-process GPU on top of it. Oracle: torch.device's own parsing; CUDA presence is patched."""
import pytest
import torch

from infomin.device import resolve_device


def test_auto_cpu_and_explicit_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device(None) == resolve_device("CPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_refusals_name_the_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="--device is 'cuda:0' but CUDA is not available.*--device cpu"):
        resolve_device("cuda:0", "--device")
    for bad in ("gpu", "cuda:x", "mps0"):
        with pytest.raises(ValueError, match="DEVICE must be auto, cpu, cuda or cuda:N"):
            resolve_device(bad, "DEVICE")


def test_engine_takes_its_local_rank_gpu(monkeypatch):
    from infomin.pretrain import distributed as du

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert du.resolve_device("auto") == torch.device("cuda", 3) == du.resolve_device("cuda")
    assert du.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 3)] * 2 + [torch.device("cuda", 1)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="MODEL.DEVICE is 'cuda'"):
        du.resolve_device("cuda")


def test_study_and_learn_views_refuse_a_bad_device(tmp_path, capsys):
    from infomin.cli.learn_views import main as learn_views
    from infomin.study.cli.demo import main as demo

    assert demo(["--output", str(tmp_path / "d"), "--device", "gpu"]) == 2
    assert "--device must be auto, cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        learn_views(["DEVICE", "gpu"])
    assert "DEVICE must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err
