"""`tools/install_detectron2.py`: the sdist is verified before it is unpacked, unpacking stays inside
its folder, and every fix applies to the pinned source exactly as written.

The pinned sdist is downloaded once (through the installer's own fetch) into pytest's cache
folder; without network access and without a cached copy, the test that needs it is skipped.
The installed Detectron2 in this environment, when it is the installer's build, is the oracle for
what the fixes must produce.
"""
import contextlib
import importlib.util
import io
import os
import re
import tarfile
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "install_detectron2.py"


@pytest.fixture(scope="module")
def installer():
    spec = importlib.util.spec_from_file_location("install_detectron2_under_test", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tar(path, members):
    """Write a .tar.gz of (name, kind, payload): kind "file" (payload: bytes), "symlink" or
    "hardlink" (payload: link target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = payload
                tar.addfile(info)
    return path


def _layout(installer):
    """Members of a well-formed (but fake) sdist: its top folder and the detectron2 package."""
    top = f"{installer.SDIST_NAME}-{installer.SDIST_VERSION}"
    return [(f"{top}/setup.py", "file", b"# fake\n"),
            (f"{top}/detectron2/__init__.py", "file", b"__version__ = '0.6'\n")]


def _files_under(path):
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob("*"))


@pytest.fixture
def run_main(installer, tmp_path, monkeypatch):
    """main() with its temporary folder kept for inspection and pip never run."""
    work = tmp_path / "work"
    work.mkdir()
    pip_calls = []

    @contextlib.contextmanager
    def kept_dir(prefix=None):
        yield str(work)

    monkeypatch.setattr(installer.tempfile, "TemporaryDirectory", kept_dir)
    monkeypatch.setattr(installer, "installed_detectron2", lambda: None)
    monkeypatch.setattr(installer, "pip_install", pip_calls.append)
    return work, pip_calls


def test_sha256_mismatch_is_refused_before_anything_is_unpacked(installer, run_main, tmp_path, capsys):
    work, pip_calls = run_main
    sdist = _tar(tmp_path / installer.SDIST_FILE, _layout(installer))
    assert installer.main(["--sdist", str(sdist)]) == 1
    err = capsys.readouterr().err
    assert "sha256" in err and installer.SDIST_SHA256 in err and "Refusing to unpack" in err
    assert _files_under(work) == [] and pip_calls == []


def test_a_matching_sha256_is_what_lets_unpacking_start(installer, run_main, tmp_path, monkeypatch, capsys):
    """The control for the test above: the same file with its digest pinned is unpacked (the
    fixes, which need the real source, are skipped here)."""
    work, pip_calls = run_main
    sdist = _tar(tmp_path / installer.SDIST_FILE, _layout(installer))
    monkeypatch.setattr(installer, "SDIST_SHA256", installer.sha256_of(sdist))
    monkeypatch.setattr(installer, "apply_fixes", lambda root: None)
    assert installer.main(["--sdist", str(sdist)]) == 0
    assert "sha256 verified" in capsys.readouterr().out
    assert "pb1-detectron2-0.6/detectron2/__init__.py" in _files_under(work)
    assert pip_calls == [str(work / "pb1-detectron2-0.6")]


def _unsafe_members(outside):
    top = "pb1-detectron2-0.6"
    return {
        "dot-dot path": [(f"{top}/../../outside/evil.txt", "file", b"x")],
        "absolute path": [(str(outside / "evil.txt"), "file", b"x")],
        "symlink out, then a file through it": [
            (f"{top}/detectron2/escape", "symlink", "../../../outside"),
            (f"{top}/detectron2/escape/evil.txt", "file", b"x")],
        "absolute symlink, then a file through it": [
            (f"{top}/detectron2/escape", "symlink", str(outside)),
            (f"{top}/detectron2/escape/evil.txt", "file", b"x")],
        "hard link to a file outside": [(f"{top}/detectron2/passwd", "hardlink", str(outside / "secret"))],
    }


@pytest.mark.parametrize("case", list(_unsafe_members(Path("/x"))))
def test_unsafe_archive_members_do_not_escape_the_folder(installer, tmp_path, case):
    sandbox = tmp_path / "sandbox"
    dest, outside = sandbox / "dest", sandbox / "outside"
    dest.mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("keep out")
    sdist = _tar(tmp_path / "evil.tar.gz", _layout(installer) + _unsafe_members(outside)[case])
    try:
        installer.unpack(str(sdist), str(dest))
        refused = False
    except tarfile.FilterError:
        refused = True
    assert sorted(os.listdir(outside)) == ["secret"] and (outside / "secret").read_text() == "keep out"
    assert sorted(os.listdir(sandbox)) == ["dest", "outside"]
    if case == "absolute path":  # tarfile's "data" filter strips the leading "/": it stays inside
        assert refused or (dest / str(outside / "evil.txt").lstrip("/")).is_file()
    else:
        assert refused, case
    for path in Path(dest).rglob("*"):  # nothing extracted links out of the folder
        assert Path(os.path.realpath(path)).is_relative_to(os.path.realpath(dest)), path


# ----------------------------------------------------------------------------- the pinned source

@pytest.fixture(scope="module")
def pinned_sdist(installer, request, tmp_path_factory):
    cache = getattr(request.config, "cache", None)
    folder = Path(cache.mkdir("install_detectron2")) if cache else tmp_path_factory.mktemp("sdist")
    path = folder / installer.SDIST_FILE
    if not path.is_file():
        try:
            installer.download_sdist(str(folder))
        except installer.InstallError as exc:
            pytest.skip(f"the pinned {installer.SDIST_FILE} is neither cached in {folder} nor "
                        f"downloadable here: {exc}")
    installer.verify(str(path))  # a wrong download is a failure, not a skip
    return path


@pytest.fixture(scope="module")
def pristine(installer, pinned_sdist, tmp_path_factory):
    return Path(installer.unpack(str(pinned_sdist), str(tmp_path_factory.mktemp("pristine"))))


def test_each_fix_anchor_occurs_exactly_once_in_the_pinned_source(installer, pristine):
    texts = {}
    for rel, old, new, why in installer.FIXES:
        text = texts.setdefault(rel, (pristine / rel).read_text(encoding="utf-8"))
        assert text.count(old) == 1, (rel, why, old)
        texts[rel] = text.replace(old, new)  # later fixes to the same file see earlier ones


@pytest.fixture(scope="module")
def patched(installer, pinned_sdist, tmp_path_factory):
    root = Path(installer.unpack(str(pinned_sdist), str(tmp_path_factory.mktemp("patched"))))
    before = {rel: (root / rel).read_text(encoding="utf-8") for rel, *_ in installer.FIXES}
    installer.apply_fixes(str(root))
    return root, before


def test_fixes_apply_to_the_pinned_source(installer, patched):
    root, before = patched
    for rel, old, new, why in installer.FIXES:
        after = (root / rel).read_text(encoding="utf-8")
        assert new in after and after != before[rel], (rel, why)
    assert (root / "setup.py").read_text(encoding="utf-8") == installer.SETUP_PY
    assert not (root / "pb1_detectron2.egg-info").exists()
    # the patched sources compile, and the numpy/Pillow names the fixes replace are gone
    for rel in {rel for rel, *_ in installer.FIXES}:
        text = (root / rel).read_text(encoding="utf-8")
        compile(text, rel, "exec")
        code = re.sub(r"#.*", "", text)  # upstream keeps one `.astype(np.bool)` in a comment
        assert not re.search(r"\bnp\.(str|int|float|bool)\b|\bImage\.LINEAR\b", code), rel


def test_installed_detectron2_is_the_patched_pinned_source(installer, patched):
    """This environment's Detectron2, when the installer built it, holds exactly these files."""
    root, _ = patched
    found = installer.installed_detectron2()
    if found is None or not found[1]:
        pytest.skip(f"the importable detectron2 is not the installer's build ({found})")
    import detectron2

    installed = Path(detectron2.__file__).resolve().parent.parent
    for rel in {rel for rel, *_ in installer.FIXES}:
        assert (installed / rel).read_text(encoding="utf-8") == \
            (root / rel).read_text(encoding="utf-8"), rel
