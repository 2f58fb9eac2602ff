"""Suite-wide settings."""
import logging

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The tests run tiny models on a 2-core machine, often beside other processes: torch's
    intra-op threads mostly wait on each other there (up to 10x slower), so use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def root_logging_restored():
    """A command run in-process configures the root logger for its process (level, handlers), as
    it should; restore it after each test so the next test's commands start from a clean one."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def demo_quick_run(tmp_path_factory):
    """One `tools/demo.py --quick` run shared by every test file that inspects it: (output folder,
    exit code, seconds). Run through the tool's own entry point, so it follows wherever the demo
    module lives. Tests may rerun stages in it but must leave it a complete, valid run."""
    import runpy
    import time
    from pathlib import Path

    main = runpy.run_path(str(Path(__file__).resolve().parent.parent / "tools" / "demo.py"))["main"]
    out = tmp_path_factory.mktemp("demo") / "run"
    start = time.time()
    code = main(["--quick", "--output", str(out), "--device", "cpu", "--seed", "0"])
    return out, code, time.time() - start
