"""Shared pieces of the pretraining-engine tests: tiny generated data and tiny-run options."""
from __future__ import annotations

import contextlib
import os

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "configs", "pretrain", "infomin_R18_tiny.yaml")


def tiny_opts(root, out, *extra) -> list[str]:
    """Options for a seconds-long CPU run of the tiny InfoMin config."""
    return ["DATA.ROOT", str(root), "OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu",
            "KNN.ENABLED", "False", *map(str, extra)]


@contextlib.contextmanager
def one_thread():
    """On a shared 2-core machine torch's default 2 threads spin against each other (30x slower)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def usage_error(main, argv, capsys, prog: str) -> str:
    """Run a command's main(argv) the way a user would and return its error message, after
    checking the one style every tool shares: exit status 2 and one `prog: error: ...` line on
    stderr, no traceback."""
    import pytest

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, (exc.value.code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err, err
    return lines[-1][len(f"{prog}: error: "):]
