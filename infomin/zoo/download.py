"""Verified, resumable downloads of model-zoo checkpoints into a local cache.

Checkpoints are pickles, and unpickling runs code, so a file is checked before anything opens it:
its sha256 must match the catalogue (or, where the publisher gives none, the sha256 pinned in the
cache at first download: "trust on first use"), and its md5 must start with the publisher's md5
prefix where one is given. A file that fails is deleted and refused. Transfers go to a `.part`
file that an interrupted run resumes with an HTTP Range request; the finished file is moved into
place with `os.replace`, so the cache never holds a half-written checkpoint under its real name.

Cache layout (root: `$INFOMIN_CACHE`, else `~/.cache/infomin`)::

    <root>/zoo/<NAME>/<filename>          the verified checkpoint (a manual download goes here)
    <root>/zoo/<NAME>/<filename>.sha256   its verified sha256 (the pin)
    <root>/zoo/<NAME>/<filename>.part     an unfinished transfer
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from iopath.common.file_io import file_lock
from tqdm import tqdm

from infomin.atomic import atomic_write_text

from .catalog import ZooEntry

CACHE_ENV = "INFOMIN_CACHE"
USER_AGENT = "infomin-model-zoo/0.1 (+https://github.com/)"
_CHUNK = 1 << 20
_RETRY_HTTP = {408, 429, 500, 502, 503, 504}

logger = logging.getLogger(__name__)


class ZooError(RuntimeError):
    """A model-zoo operation failed; the message says what to do."""


class DownloadError(ZooError):
    """The file could not be fetched (no network, 404, no direct URL, ...)."""


class ChecksumError(ZooError):
    """A file does not match its expected checksum; it has been deleted (never the user's own file)."""


class ArchitectureError(ZooError):
    """A file is not the architecture its catalogue entry describes (nothing was imported)."""


class _Interrupted(Exception):
    """A transfer stopped early; the `.part` file holds what arrived and the next attempt resumes."""


# ----------------------------------------------------------------------------- paths

def cache_root(cache: str | os.PathLike | None = None) -> Path:
    """`cache`, else $INFOMIN_CACHE, else ~/.cache/infomin."""
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "infomin"


def entry_dir(entry: ZooEntry, cache: str | os.PathLike | None = None) -> Path:
    return cache_root(cache) / "zoo" / entry.name


def checkpoint_path(entry: ZooEntry, cache: str | os.PathLike | None = None) -> Path:
    """Where the verified checkpoint lives, and where a manually fetched copy is picked up."""
    return entry_dir(entry, cache) / entry.filename


def pin_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".sha256")


def part_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".part")


# ----------------------------------------------------------------------------- verification

def file_digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) hex digests of a file, read in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def read_pin(checkpoint: Path) -> str | None:
    try:
        text = pin_path(checkpoint).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _looks_like_checkpoint(path: Path) -> bool:
    """torch.save writes a zip (PK\\x03\\x04) or, before torch 1.6, a pickle (protocol byte 0x80)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def check_file(entry: ZooEntry, path: Path, pinned: str | None) -> str:
    """Verify `path` against the entry's checksums (and `pinned`); returns its sha256.

    Never opens the file as a pickle. Raises ChecksumError without deleting anything: callers
    decide what may be deleted.
    """
    sha, md5 = file_digests(path)
    if entry.md5_prefix and not md5.startswith(entry.md5_prefix):
        raise ChecksumError(
            f"{entry.name}: {path} has md5 {md5}, but the publisher's md5 starts with "
            f"{entry.md5_prefix}"
        )
    if entry.sha256 and sha != entry.sha256:
        raise ChecksumError(f"{entry.name}: {path} has sha256 {sha}, but the catalogue "
                            f"says {entry.sha256}")
    if not entry.sha256 and pinned and sha != pinned:
        raise ChecksumError(
            f"{entry.name}: {path} has sha256 {sha}, but the copy first downloaded had {pinned} "
            f"(the publisher gives no checksum; that one was pinned). If the publisher has really "
            f"replaced the file and you trust the new one, delete the pin {entry.filename}.sha256 in "
            f"{path.parent}"
        )
    if not _looks_like_checkpoint(path):
        raise ChecksumError(
            f"{entry.name}: {path} is not a torch checkpoint (neither a zip nor a pickle); "
            "a web page or error message was probably saved instead"
        )
    return sha


def _pin(entry: ZooEntry, final: Path, sha: str, pinned: str | None) -> None:
    """Record the verified sha256 beside the checkpoint (the pin later copies must match)."""
    if pinned == sha:
        return
    if not entry.sha256:
        logger.warning("%s: the publisher gives no checksum; pinned sha256 %s in %s (trust on "
                       "first use: later copies must match it)", entry.name, sha, pin_path(final))
    write_text_atomic(pin_path(final), sha + "\n")


def check_architecture(entry: ZooEntry, path: Path) -> None:
    """Refuse a file whose ResNet (read from its tensor shapes, opened with weights_only) is not
    the one the catalogue entry describes (depth, width, groups).

    A file the converter cannot read safely (Python objects beyond tensors) or that holds no
    ResNet is left to the checksum and to `convert`, which refuses it with its own message.
    """
    from infomin.convert import ConversionError, infer_arch, load_checkpoint, read_backbone

    expected = entry.detectron2 or {}
    if entry.is_detector or "MODEL.RESNETS.DEPTH" not in expected:
        return
    try:
        found = read_backbone(load_checkpoint(str(path)), None, entry.ema)
        arch = infer_arch(found.backbone)
    except ConversionError:
        return
    want = {"depth": expected["MODEL.RESNETS.DEPTH"], "width": entry.width}
    have = {"depth": arch.depth, "width": arch.width_multiplier}
    for key in ("MODEL.RESNETS.NUM_GROUPS", "MODEL.RESNETS.WIDTH_PER_GROUP"):
        if key in expected:
            want[key.rsplit(".", 1)[1].lower()] = expected[key]
            have[key.rsplit(".", 1)[1].lower()] = arch.detectron2_settings()[key]
    wrong = [f"{k} {have[k]} (catalogue: {want[k]})" for k in want if have[k] != want[k]]
    if wrong:
        raise ArchitectureError(
            f"{entry.name}: {path} holds a {arch.name} ({', '.join(wrong)}), not the {entry.arch}"
            f"{f' x{entry.width}' if entry.width != 1 else ''} the catalogue lists for "
            f"{entry.name}; it is another model. Convert your own checkpoint with "
            "infomin-convert-pretrained instead, or import the published file.")


def check_import(entry: ZooEntry, src: str | os.PathLike,
                 cache: str | os.PathLike | None = None) -> None:
    """What `infomin-model-zoo ... --file` checks before importing: the checksums first (never
    unpickling), then the architecture (weights_only). Raises ZooError; `src` is left as it is."""
    src = Path(src).expanduser()
    if not src.is_file():
        raise ZooError(f"--file {src}: no such file")
    try:
        check_file(entry, src, read_pin(checkpoint_path(entry, cache)))
        check_architecture(entry, src)
    except ZooError as e:
        raise type(e)(f"{e} {src} was not imported (and was left as it is).") from None


def _install(entry: ZooEntry, candidate: Path, final: Path) -> Path:
    """Verify `candidate` (in final's folder), pin its sha256, then move it to `final`."""
    pinned = read_pin(final)
    sha = check_file(entry, candidate, pinned)
    _pin(entry, final, sha, pinned)
    os.replace(candidate, final)
    return final


def _verify_cached(entry: ZooEntry, final: Path) -> Path:
    """Check a file already at the cache path (a previous download, or one the user put there)."""
    pinned = read_pin(final)
    try:
        sha = check_file(entry, final, pinned)
    except ChecksumError as e:
        final.unlink(missing_ok=True)
        raise ChecksumError(f"{e}. The cached file was deleted; run the download again.") from None
    _pin(entry, final, sha, pinned)
    return final


# ----------------------------------------------------------------------------- transfer

def _transfer(url: str, part: Path, timeout: float, progress: bool, desc: str) -> None:
    """One HTTP request appending to `part` (Range from its current size); raises _Interrupted."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            return  # nothing left to send: the part is complete (or too long; the checksum decides)
        if e.code in _RETRY_HTTP:
            raise _Interrupted(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"cannot connect ({e.reason})") from None
    except (TimeoutError, ConnectionError) as e:
        raise _Interrupted(f"{type(e).__name__}: {e}") from None

    with resp:
        status = getattr(resp, "status", 200)
        length = resp.headers.get("Content-Length")
        remaining = int(length) if length is not None and length.isdigit() else None
        if have and status == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                raise _Interrupted(f"server answered the resume with a wrong range "
                                   f"({resp.headers.get('Content-Range')!r}); restarting")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode = "ab"
        else:
            have, mode = 0, "wb"  # the server ignored Range (or none was sent): start over
            total = remaining
        got = 0
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=desc, disable=not progress,
                                         leave=False) as bar:
            try:
                while chunk := resp.read(_CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (OSError, ValueError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
                raise _Interrupted(f"connection lost after {have + got} bytes ({e})") from None
            finally:
                f.flush()
                os.fsync(f.fileno())
    if remaining is not None and got < remaining:
        raise _Interrupted(f"connection closed after {have + got} of {have + remaining} bytes")


def _download(url: str, part: Path, *, retries: int, timeout: float, backoff: float,
              progress: bool, desc: str) -> None:
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout, progress, desc)
            return
        except _Interrupted as e:
            if attempt == retries:
                raise DownloadError(f"{e}; gave up after {retries + 1} attempt(s)") from None
            size = part.stat().st_size if part.exists() else 0
            logger.warning("%s: %s; resuming from byte %d", desc, e, size)
            time.sleep(backoff * (2 ** attempt))


# ----------------------------------------------------------------------------- public API

def manual_instructions(entry: ZooEntry, final: Path) -> str:
    """How to fetch a file by hand and where it will be picked up."""
    lines = []
    if entry.shared_folder:
        lines.append(f"  1. open the publisher's shared folder {entry.shared_folder}")
        lines.append(f"  2. download the file {entry.filename}")
    else:
        lines.append(f"  1. download {entry.filename} from {' or '.join(entry.urls)}")
    lines.append(f"  then either put it at exactly {final}")
    lines.append(f"  or run: infomin-model-zoo download {entry.name} --file /path/to/{entry.filename}")
    lines.append(f"Before anything opens it, the file is checked ({entry.checksum_kind}).")
    return "\n".join(lines)


def fetch(entry: ZooEntry, cache: str | os.PathLike | None = None, *, retries: int = 3,
          timeout: float = 60.0, backoff: float = 1.0, progress: bool = True) -> Path:
    """Return the path of the verified checkpoint, downloading it first if needed.

    A transfer that breaks is resumed (up to `retries` more requests, and again on the next call,
    from the kept `.part`). No network, a 404 or a publisher without a direct link raises
    DownloadError naming the URL and the exact cache path where a manual download is picked up.
    """
    final = checkpoint_path(entry, cache)
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(str(final)):
        if final.exists():
            return _verify_cached(entry, final)
        if not entry.urls:
            raise DownloadError(
                f"{entry.name}: the publisher gives no direct download link, only a shared folder.\n"
                + manual_instructions(entry, final)
            )
        part = part_path(final)
        failures, mismatch = [], None
        for url in entry.urls:
            try:
                _download(url, part, retries=retries, timeout=timeout, backoff=backoff,
                          progress=progress, desc=entry.filename)
                return _install(entry, part, final)
            except ChecksumError as e:
                part.unlink(missing_ok=True)
                mismatch = e
                failures.append(f"  {url}: {e} (the download was deleted)")
            except DownloadError as e:
                failures.append(f"  {url}: {e}")
        kept = (f"\nThe partial download is kept at {part} and resumes on the next try."
                if part.exists() else "")
        msg = (f"could not download {entry.name}:\n" + "\n".join(failures) + kept
               + "\nTo fetch it by other means:\n" + manual_instructions(entry, final))
        raise (ChecksumError if mismatch else DownloadError)(msg)


def import_file(entry: ZooEntry, src: str | os.PathLike,
                cache: str | os.PathLike | None = None) -> Path:
    """Copy a local file into the cache after verifying it; `src` itself is never modified."""
    src = Path(src).expanduser()
    if not src.is_file():
        raise ZooError(f"--file {src}: no such file")
    final = checkpoint_path(entry, cache)
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(str(final)):
        if final.exists() and src.resolve() == final.resolve():
            return _verify_cached(entry, final)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=final.name + ".", suffix=".import")
        os.close(fd)
        tmp = Path(tmp)
        try:
            shutil.copyfile(src, tmp)
            return _install(entry, tmp, final)
        except ChecksumError as e:
            raise ChecksumError(f"{e}. {src} was not imported (and was left as it is).") from None
        finally:
            tmp.unlink(missing_ok=True)
