"""Suite-wide settings."""
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
