"""Load and validate the model-zoo catalogue (`catalog.yaml`).

The catalogue is data, shipped as package data; this module turns it into `ZooEntry` records and
refuses a malformed file with a message naming the entry and the field, so that a bad edit never
reaches the downloader (which trusts `sha256`/`md5_prefix` to decide what may be unpickled).
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

CATALOG_ENV = "INFOMIN_ZOO_CATALOG"
DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MD5_PREFIX_RE = re.compile(r"^[0-9a-f]{4,32}$")
_REQUIRED = ("method", "arch", "epochs", "filename", "format", "input")
_KNOWN = set(_REQUIRED) | {
    "publisher", "width", "urls", "url_source", "shared_folder", "sha256", "md5_prefix",
    "detectron2", "not_convertible", "reported", "notes", "sources", "ema", "kind", "config", "log",
}
# "encoder": a pretrained backbone, converted to Detectron2 names before use;
# "detector": a fine-tuned Detectron2 checkpoint, used as it is with the config it was trained with.
KINDS = ("encoder", "detector")


class CatalogError(ValueError):
    """The catalogue file is malformed (the message names the file, entry and field)."""


class UnknownModelError(KeyError):
    """No catalogue entry has the requested name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One published checkpoint, as the catalogue describes it."""

    name: str
    method: str
    arch: str
    epochs: int | None
    filename: str
    format: str
    input: Mapping[str, Any]
    input_name: str
    publisher: str = ""
    width: float = 1
    urls: tuple[str, ...] = ()
    url_source: str | None = None
    shared_folder: str | None = None
    sha256: str | None = None
    md5_prefix: str | None = None
    ema: bool = False
    detectron2: Mapping[str, Any] | None = None
    not_convertible: str | None = None
    reported: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    notes: str | None = None
    sources: tuple[str, ...] = ()
    source_text: Mapping[str, str] = dataclasses.field(default_factory=dict)
    kind: str = "encoder"
    config: str | None = None  # detectors: the packaged config (infomin.configs) it was trained with
    log: str | None = None  # detectors: the publisher's training log

    @property
    def is_detector(self) -> bool:
        return self.kind == "detector"

    @property
    def convertible(self) -> bool:
        """An encoder that converts to a Detectron2 backbone (detectors need no conversion)."""
        return not self.is_detector and self.detectron2 is not None

    @property
    def checksum_kind(self) -> str:
        """How the file is verified: publisher sha256, publisher md5 prefix (+ pinned sha256), or TOFU."""
        if self.sha256:
            return "sha256"
        if self.md5_prefix:
            return "md5-prefix+pin"
        return "pin (trust on first use)"

    def detectron2_settings(self) -> dict[str, Any]:
        """Config keys (dotted) a Detectron2 config needs for this backbone, input convention included."""
        if self.is_detector:
            raise CatalogError(f"{self.name} is a fine-tuned detector: evaluate it with its own "
                               f"config {self.config}")
        if self.detectron2 is None:
            raise CatalogError(f"{self.name} has no Detectron2 form: {self.not_convertible}")
        return {**self.input, **self.detectron2}


def catalog_path(path: str | os.PathLike | None = None) -> Path:
    """The catalogue in use: `path`, else $INFOMIN_ZOO_CATALOG, else the shipped one."""
    if path is not None:
        return Path(path)
    env = os.environ.get(CATALOG_ENV)
    return Path(env) if env else DEFAULT_CATALOG


def load_catalog(path: str | os.PathLike | None = None) -> dict[str, ZooEntry]:
    """Read and validate a catalogue file; returns entries by name, in file order."""
    path = catalog_path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise CatalogError(f"model-zoo catalogue {path} does not exist (check ${CATALOG_ENV})") from None
    except yaml.YAMLError as e:
        raise CatalogError(f"model-zoo catalogue {path} is not valid YAML: {e}") from None
    return parse_catalog(data, origin=str(path))


def parse_catalog(data: Any, origin: str = "<catalogue>") -> dict[str, ZooEntry]:
    """Validate already-parsed catalogue data (see the schema at the top of catalog.yaml)."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise CatalogError(f"{origin}: expected a mapping with a 'models' mapping")
    if data.get("version") != 1:
        raise CatalogError(f"{origin}: unsupported catalogue version {data.get('version')!r} (expected 1)")
    sources = data.get("sources") or {}
    conventions = data.get("conventions") or {}
    if not isinstance(sources, dict) or not isinstance(conventions, dict):
        raise CatalogError(f"{origin}: 'sources' and 'conventions' must be mappings")
    return {
        name: _parse_entry(name, raw, sources, conventions, origin)
        for name, raw in data["models"].items()
    }


def get_entry(name: str, catalog: Mapping[str, ZooEntry] | str | os.PathLike | None = None) -> ZooEntry:
    """Look a model up by name; an unknown name lists the closest known ones."""
    entries = catalog if isinstance(catalog, Mapping) else load_catalog(catalog)
    if name in entries:
        return entries[name]
    folded = {k.lower(): k for k in entries}
    if name.lower() in folded:
        return entries[folded[name.lower()]]
    close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"no model named {name!r} in the model zoo.{hint} "
        "Run `infomin-model-zoo list` to see every name."
    )


def _parse_entry(name, raw, sources, conventions, origin) -> ZooEntry:
    where = f"{origin}: model {name!r}"

    def fail(msg):
        raise CatalogError(f"{where}: {msg}")

    if not isinstance(name, str) or not _NAME_RE.match(name):
        fail("names may use letters, digits, '_', '.', '-' only")
    if not isinstance(raw, dict):
        fail("entry must be a mapping")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        fail(f"missing field(s) {', '.join(missing)}")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        fail(f"unknown field(s) {', '.join(unknown)}")

    filename = raw["filename"]
    if not isinstance(filename, str) or not filename or "/" in filename or "\\" in filename \
            or filename.startswith("."):
        fail(f"filename {filename!r} must be a plain file name")
    if not (raw["epochs"] is None and raw.get("kind") == "detector") and (
            not isinstance(raw["epochs"], int) or raw["epochs"] <= 0):
        fail("epochs must be a positive integer (null only for a detector without SSL pretraining)")

    urls = raw.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        fail("urls must be a list of strings")
    for u in urls:
        if not u.startswith(("https://", "http://")):
            fail(f"url {u!r} must be http(s)")
    shared = raw.get("shared_folder")
    if not urls and not shared:
        fail("needs at least one of urls / shared_folder")
    if urls and not raw.get("url_source"):
        fail("urls need a url_source saying who states them")

    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256_RE.match(sha)):
        fail("sha256 must be 64 lowercase hex digits or null")
    md5 = raw.get("md5_prefix")
    if md5 is not None and not (isinstance(md5, str) and _MD5_PREFIX_RE.match(md5)):
        fail("md5_prefix must be 4-32 lowercase hex digits or null")

    conv_name = raw["input"]
    if conv_name not in conventions:
        fail(f"input convention {conv_name!r} is not defined under 'conventions'")
    kind = raw.get("kind", "encoder")
    if kind not in KINDS:
        fail(f"kind {kind!r} must be one of {', '.join(KINDS)}")
    d2 = raw.get("detectron2")
    if kind == "detector":
        if not isinstance(raw.get("config"), str) or not raw["config"]:
            fail("a detector needs 'config': the packaged config it was trained with")
        if d2 is not None:
            fail("a detector is used as published: 'detectron2' (conversion settings) does not apply")
    elif raw.get("config") is not None or raw.get("log") is not None:
        fail("'config' and 'log' are for kind: detector")
    elif d2 is None and not raw.get("not_convertible"):
        fail("detectron2: null needs a not_convertible reason")
    if d2 is not None and not isinstance(d2, dict):
        fail("detectron2 must be a mapping of config keys or null")

    reported = raw.get("reported") or {}
    if not isinstance(reported, dict):
        fail("reported must be a mapping")
    for key, rec in reported.items():
        if not isinstance(rec, dict) or rec.get("source") not in sources:
            fail(f"reported.{key} needs a 'source' defined under 'sources'")
        values = {k: v for k, v in rec.items() if k not in ("source", "note")}
        if not values or not all(isinstance(v, (int, float)) for v in values.values()):
            fail(f"reported.{key} needs numeric values besides source/note")
    cited = list(raw.get("sources") or [])
    if raw.get("url_source"):
        cited.append(raw["url_source"])
    for s in cited:
        if s not in sources:
            fail(f"source {s!r} is not defined under 'sources'")
    used = set(cited) | {rec["source"] for rec in reported.values()}

    return ZooEntry(
        name=name,
        method=str(raw["method"]),
        arch=str(raw["arch"]),
        epochs=raw["epochs"],
        filename=filename,
        format=str(raw["format"]),
        input=dict(conventions[conv_name]),
        input_name=conv_name,
        publisher=str(raw.get("publisher", "")),
        width=raw.get("width", 1),
        urls=tuple(urls),
        url_source=raw.get("url_source"),
        shared_folder=shared,
        sha256=sha,
        md5_prefix=md5,
        ema=bool(raw.get("ema", False)),
        detectron2=dict(d2) if d2 is not None else None,
        not_convertible=raw.get("not_convertible"),
        reported={k: dict(v) for k, v in reported.items()},
        notes=raw.get("notes"),
        sources=tuple(raw.get("sources") or ()),
        source_text={s: sources[s] for s in sorted(used)},
        kind=kind,
        config=raw.get("config"),
        log=raw.get("log"),
    )
