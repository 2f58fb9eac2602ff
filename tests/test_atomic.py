"""infomin.atomic: the destination holds the old file or the whole new one, never a part."""
import os

import pytest

from infomin.atomic import atomic_file, atomic_write_path, atomic_write_text


def test_text_write_creates_folder_and_uses_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(target.parent) == ["out.txt"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as f:
            f.write(b"new, but only half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_path_writer_for_libraries_that_take_a_path(tmp_path):
    target = tmp_path / "fig.png"
    atomic_write_path(target, lambda tmp: open(tmp, "wb").write(b"\x89PNG"))
    assert target.read_bytes() == b"\x89PNG"
    with pytest.raises(OSError):
        atomic_write_path(target, lambda tmp: open(os.path.join(tmp, "x"), "wb"))
    assert target.read_bytes() == b"\x89PNG" and os.listdir(tmp_path) == ["fig.png"]
