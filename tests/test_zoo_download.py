"""Verified, resumable zoo downloads against a real HTTP server on 127.0.0.1."""
import hashlib
import pickle

import pytest
import torch

from _zoo_helpers import ZooServer, checkpoint_bytes, closed_port_url, entry, sha256, write_catalog
from infomin.zoo import ChecksumError, DownloadError, fetch, get_entry, import_file
from infomin.zoo.download import checkpoint_path, part_path, pin_path

GOOD = checkpoint_bytes(60_000, seed=0)
OTHER = checkpoint_bytes(60_000, seed=1)  # same size, different bytes: a corrupted copy
FAST = dict(timeout=5.0, backoff=0.0, progress=False)


@pytest.fixture
def server():
    files = {"/good.pth": GOOD, "/corrupt.pth": OTHER, "/cut.pth": GOOD, "/tofu.pth": GOOD,
             "/page.pth": b"<html><body>This file is no longer available</body></html>"}
    with ZooServer(files) as srv:
        yield srv


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if anything unpickles while the zoo downloads and verifies."""
    def refuse(*a, **k):
        raise AssertionError("a file was unpickled during download/verification")
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


@pytest.fixture
def zoo(tmp_path, server):
    """Catalogue entries pointing at the local server; returns (entries, cache dir)."""
    s = sha256(GOOD)
    models = {
        "good": entry("good.pth", [server.url("/good.pth")], sha=s),
        "corrupt": entry("corrupt.pth", [server.url("/corrupt.pth")], sha=s),
        "cut": entry("cut.pth", [server.url("/cut.pth")], sha=s),
        "missing": entry("missing.pth", [server.url("/missing.pth")], sha=s),
        "offline": entry("offline.pth", [closed_port_url("/offline.pth")], sha=s),
        "tofu": entry("tofu.pth", [server.url("/tofu.pth")]),
        "page": entry("page.pth", [server.url("/page.pth")]),
        "md5ok": entry("md5ok.pth", [server.url("/good.pth")],
                       md5_prefix=hashlib.md5(GOOD).hexdigest()[:8]),
        "md5bad": entry("md5bad.pth", [server.url("/good.pth")], md5_prefix="00000000"),
        "manual": entry("manual.pth", [], sha=s, shared_folder="https://example.org/shared/folder"),
    }
    cat = write_catalog(tmp_path / "catalog.yaml", models)
    from infomin.zoo import load_catalog
    return load_catalog(cat), tmp_path / "cache"


def test_good_file_is_verified_pinned_and_reused(zoo, server, no_unpickling):
    entries, cache = zoo
    e = entries["good"]
    path = fetch(e, cache, **FAST)
    assert path == checkpoint_path(e, cache) and path.read_bytes() == GOOD
    assert pin_path(path).read_text().strip() == sha256(GOOD)
    assert not part_path(path).exists()
    n = len(server.requests)
    assert fetch(e, cache, **FAST) == path  # cached: verified again, not fetched again
    assert len(server.requests) == n


def test_corrupted_file_is_deleted_and_refused(zoo, no_unpickling):
    entries, cache = zoo
    e = entries["corrupt"]
    with pytest.raises(ChecksumError) as err:
        fetch(e, cache, **FAST)
    assert sha256(GOOD) in str(err.value) and sha256(OTHER) in str(err.value)
    folder = checkpoint_path(e, cache).parent
    assert not checkpoint_path(e, cache).exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == []


def test_cut_transfer_resumes_with_range_on_next_attempt(zoo, server, no_unpickling):
    entries, cache = zoo
    e = entries["cut"]
    server.httpd.cut_next.add("/cut.pth")
    with pytest.raises(DownloadError) as err:
        fetch(e, cache, retries=0, **FAST)
    part = part_path(checkpoint_path(e, cache))
    assert part.stat().st_size == len(GOOD) // 2
    assert str(part) in str(err.value) and not checkpoint_path(e, cache).exists()

    path = fetch(e, cache, **FAST)  # the rerun asks only for the rest
    assert server.requests[-1] == ("/cut.pth", f"bytes={len(GOOD) // 2}-")
    assert path.read_bytes() == GOOD and not part.exists()


def test_cut_transfer_is_retried_within_one_call(zoo, server):
    entries, cache = zoo
    server.httpd.cut_next.add("/cut.pth")
    path = fetch(entries["cut"], cache, retries=1, **FAST)
    assert path.read_bytes() == GOOD
    assert [r for _, r in server.requests] == [None, f"bytes={len(GOOD) // 2}-"]


def test_resume_survives_a_redirect(zoo, server, tmp_path):
    entries, cache = zoo
    server.httpd.redirects["/dl.pth"] = "/cut.pth"
    server.httpd.cut_next.add("/cut.pth")
    cat = write_catalog(tmp_path / "redirect.yaml", {
        "redirected": entry("r.pth", [server.url("/dl.pth")], sha=sha256(GOOD))})
    e = get_entry("redirected", cat)
    assert fetch(e, cache, retries=1, **FAST).read_bytes() == GOOD
    ranges = [r for path, r in server.requests if path == "/cut.pth"]
    assert ranges == [None, f"bytes={len(GOOD) // 2}-"]  # the Range header followed the redirect


def test_server_that_ignores_range_restarts_cleanly(zoo, server):
    entries, cache = zoo
    e = entries["good"]
    server.httpd.honour_range = False
    part = part_path(checkpoint_path(e, cache))
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from another file")
    assert fetch(e, cache, **FAST).read_bytes() == GOOD


def test_404_names_the_url_and_the_cache_path(zoo):
    entries, cache = zoo
    e = entries["missing"]
    with pytest.raises(DownloadError) as err:
        fetch(e, cache, **FAST)
    msg = str(err.value)
    assert "404" in msg and e.urls[0] in msg and str(checkpoint_path(e, cache)) in msg
    assert not checkpoint_path(e, cache).exists()


def test_no_network_error_names_url_and_path_where_a_manual_copy_is_picked_up(zoo):
    entries, cache = zoo
    e = entries["offline"]
    with pytest.raises(DownloadError) as err:
        fetch(e, cache, **FAST)
    target = checkpoint_path(e, cache)
    assert e.urls[0] in str(err.value) and f"exactly {target}" in str(err.value)
    target.write_bytes(GOOD)  # the user fetched it by hand and put it there
    assert fetch(e, cache, **FAST) == target
    assert pin_path(target).read_text().strip() == sha256(GOOD)


def test_import_file_verifies_and_never_touches_the_users_file(zoo, tmp_path, no_unpickling):
    entries, cache = zoo
    e = entries["offline"]
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(OTHER)
    with pytest.raises(ChecksumError):
        import_file(e, wrong, cache)
    assert wrong.read_bytes() == OTHER and not checkpoint_path(e, cache).exists()
    assert [p.name for p in checkpoint_path(e, cache).parent.iterdir()
            if not p.name.endswith(".lock")] == []

    right = tmp_path / "right.pth"
    right.write_bytes(GOOD)
    path = import_file(e, right, cache)
    assert path.read_bytes() == GOOD and right.exists()


def test_trust_on_first_use_pins_then_refuses_a_changed_file(zoo, server, no_unpickling):
    entries, cache = zoo
    e = entries["tofu"]
    path = fetch(e, cache, **FAST)
    assert pin_path(path).read_text().strip() == sha256(GOOD)

    path.write_bytes(GOOD + b"tampered")  # the cached copy changes
    with pytest.raises(ChecksumError):
        fetch(e, cache, **FAST)
    assert not path.exists()  # deleted, pin kept

    server.httpd.files["/tofu.pth"] = OTHER  # the publisher's copy changes
    with pytest.raises(ChecksumError, match="delete the pin tofu.pth.sha256"):
        fetch(e, cache, **FAST)
    assert not path.exists() and pin_path(path).read_text().strip() == sha256(GOOD)


def test_md5_prefix_from_the_publisher_is_checked(zoo):
    entries, cache = zoo
    assert fetch(entries["md5ok"], cache, **FAST).read_bytes() == GOOD
    with pytest.raises(ChecksumError, match="md5"):
        fetch(entries["md5bad"], cache, **FAST)
    assert not checkpoint_path(entries["md5bad"], cache).exists()


def test_error_page_is_not_pinned_as_a_checkpoint(zoo):
    entries, cache = zoo
    e = entries["page"]
    with pytest.raises(ChecksumError, match="not a torch checkpoint"):
        fetch(e, cache, **FAST)
    assert not checkpoint_path(e, cache).exists() and not pin_path(checkpoint_path(e, cache)).exists()


def test_shared_folder_only_entry_tells_which_file_to_fetch_and_where(zoo, server):
    entries, cache = zoo
    e = entries["manual"]
    with pytest.raises(DownloadError) as err:
        fetch(e, cache, **FAST)
    msg = str(err.value)
    assert "https://example.org/shared/folder" in msg and "manual.pth" in msg
    assert str(checkpoint_path(e, cache)) in msg and "--file" in msg
    assert server.requests == []


def test_env_var_catalogue_is_used(zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("INFOMIN_ZOO_CATALOG", str(tmp_path / "catalog.yaml"))
    assert get_entry("good").filename == "good.pth"
