"""`infomin-model-zoo`: list published checkpoints, download (verified) and convert them.

    infomin-model-zoo list
    infomin-model-zoo show InfoMin_800
    infomin-model-zoo download InfoMin_800 [--file ~/Downloads/InfoMin_800.pth]
    infomin-model-zoo convert InfoMin_800          # -> <cache>/zoo/InfoMin_800/InfoMin_800.d2.pkl

Detector entries (kind: detector) are published fine-tuned Detectron2 checkpoints: `download`
fetches one, and `infomin-train-net --eval-only --config-file CFG MODEL.WEIGHTS infomin://NAME`
evaluates it (no conversion).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys

import yaml

from infomin.zoo.catalog import CatalogError, UnknownModelError, ZooEntry, get_entry, load_catalog
from infomin.zoo.download import (ZooError, cache_root, check_import, checkpoint_path, fetch,
                                  import_file)
from infomin.zoo.weights import converted_path, ensure_converted

_DET_SHORT = {
    "coco_mask_rcnn_r50_fpn_1x": "COCO FPN-1x", "coco_mask_rcnn_r50_fpn_2x": "COCO FPN-2x",
    "coco_mask_rcnn_r50_fpn_6x": "COCO FPN-6x", "coco_mask_rcnn_r50_c4_1x": "COCO C4-1x",
    "coco_mask_rcnn_r50_c4_2x": "COCO C4-2x", "voc07_12_faster_rcnn_r50_c4_24k": "VOC C4-24k",
}


PROG = "infomin-model-zoo"


def _common(parser: argparse.ArgumentParser, default) -> None:
    """--catalog/--cache, accepted before or after the subcommand (a subcommand's copy does not
    reset what was given before it)."""
    parser.add_argument("--catalog", default=default,
                        help="catalogue YAML (default: $INFOMIN_ZOO_CATALOG or the shipped one)")
    parser.add_argument("--cache", default=default,
                        help="cache folder (default: $INFOMIN_CACHE or ~/.cache/infomin)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    _common(p, None)
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list the catalogue")
    ls.add_argument("--json", action="store_true", help="machine-readable output")

    show = sub.add_parser("show", help="everything the catalogue says about one model, with sources")
    show.add_argument("name")

    for cmd, text in (("download", "download and verify the published checkpoint"),
                      ("convert", "download, verify and convert to a Detectron2 .pkl")):
        c = sub.add_parser(cmd, help=text)
        c.add_argument("name")
        c.add_argument("--file", help="import this local copy of the published file (verified) "
                                      "instead of downloading it")
        c.add_argument("--retries", type=int, default=3, help="resume attempts per URL (default 3)")
        c.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
        c.add_argument("--no-progress", action="store_true", help="no progress bar")
    conv = sub.choices["convert"]
    conv.add_argument("--trust", action="store_true",
                      help="let the converter unpickle non-tensor objects (only for files you trust)")
    conv.add_argument("--force", action="store_true", help="convert again even if cached")
    for command in sub.choices.values():
        _common(command, argparse.SUPPRESS)
    return p


def _summary(entry: ZooEntry) -> dict:
    top1 = entry.reported.get("imagenet_linear_top1", {}).get("value")
    det = []
    for key, label in _DET_SHORT.items():
        rec = entry.reported.get(key)
        if rec:
            nums = [rec[k] for k in ("box_ap", "mask_ap", "ap") if k in rec]
            det.append(f"{label} {'/'.join(str(n) for n in nums)}")
    return {"name": entry.name, "kind": entry.kind, "method": entry.method, "arch": entry.arch,
            "epochs": entry.epochs, "top1": top1, "detection": ", ".join(det),
            "verify": entry.checksum_kind,
            "get": "direct" if entry.urls else "manual (shared folder)",
            "detectron2": entry.convertible}


def _list(entries, cache, as_json: bool) -> None:
    rows = []
    for e in entries.values():
        row = _summary(e)
        row["cached"] = ("d2" if converted_path(e, cache).exists()
                         else "pth" if checkpoint_path(e, cache).exists() else "")
        rows.append(row)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    cols = [("name", "NAME"), ("kind", "KIND"), ("method", "METHOD"), ("arch", "ARCH"), ("epochs", "EP"),
            ("top1", "IN-1k TOP-1"), ("detection", "DETECTION (box/mask AP or VOC AP)"),
            ("verify", "VERIFIED BY"), ("get", "GET"), ("cached", "CACHED")]
    cells = [[("-" if r[k] in (None, "") else str(r[k])) for k, _ in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(cols)]
    print("  ".join(h.ljust(w) for (_, h), w in zip(cols, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))
    print(f"\n{len(rows)} models; numbers as published (see `show NAME` for sources). "
          f"Cache: {cache_root(cache)}")


def _show(entry: ZooEntry) -> None:
    data = {
        "name": entry.name, "publisher": entry.publisher, "method": entry.method,
        "arch": entry.arch, "epochs": entry.epochs, "file": entry.filename,
        "urls": list(entry.urls), "url_source": entry.url_source,
        "shared_folder": entry.shared_folder, "sha256": entry.sha256,
        "md5_prefix": entry.md5_prefix, "verified_by": entry.checksum_kind,
        "kind": entry.kind, "config": entry.config, "log": entry.log,
        "detectron2_config": (None if entry.is_detector else entry.detectron2_settings()
                              if entry.convertible else f"not convertible: {entry.not_convertible}"),
        "reported": {k: dict(v) for k, v in entry.reported.items()},
        "notes": entry.notes, "sources": dict(entry.source_text),
    }
    print(yaml.safe_dump({k: v for k, v in data.items() if v not in (None, [], {})},
                         sort_keys=False, width=100), end="")


def _tensor_settings(converted) -> dict:
    """The MODEL.RESNETS settings read from the converted weights' tensor shapes ({} if unreadable)."""
    from infomin.convert import ConversionError
    from infomin.convert.inspect import detectron2_arch, shape_settings

    try:
        with open(converted, "rb") as f:
            data = pickle.load(f)  # the converter's own output, written into our cache
        arch = detectron2_arch(data["model"])
    except (OSError, pickle.UnpicklingError, KeyError, TypeError, ConversionError):
        return {}
    return {**shape_settings(arch), "MODEL.RESNETS.STRIDE_IN_1X1": False}


def _config_hint(entry: ZooEntry, converted=None) -> str:
    """Command-line config options (Python literals, as Detectron2's merge_from_list reads them):
    the catalogue's input convention, and the architecture read from the converted tensors."""
    if entry.is_detector:
        return (f"evaluate it with: infomin-train-net --eval-only --config-file {entry.config} "
                f"MODEL.WEIGHTS infomin://{entry.name}")
    def literal(v):
        return v if isinstance(v, str) else repr(v).replace(" ", "")
    settings = dict(entry.detectron2_settings())
    if converted is not None:
        settings.update(_tensor_settings(converted))
    opts = " ".join(f"{k} {literal(v)}" for k, v in settings.items())
    return f"use it with: MODEL.WEIGHTS infomin://{entry.name} {opts}"


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.catalog is not None and not os.path.isfile(args.catalog):
        print(f"{PROG}: error: --catalog {args.catalog}: no such file; give the path of a "
              "catalogue YAML, or leave --catalog out to use the shipped one", file=sys.stderr)
        return 2
    try:
        entries = load_catalog(args.catalog)
        if args.command == "list":
            _list(entries, args.cache, args.json)
            return 0
        entry = get_entry(args.name, entries)
        if args.command == "show":
            _show(entry)
            return 0
        progress = not args.no_progress
        if args.file:  # checksums, then the architecture the catalogue lists
            check_import(entry, args.file, args.cache)
        if args.command == "download":
            if args.file:
                path = import_file(entry, args.file, args.cache)
            else:
                path = fetch(entry, args.cache, retries=args.retries, timeout=args.timeout,
                             progress=progress)
            print(path)
            if entry.is_detector:
                print(_config_hint(entry), file=sys.stderr)
            return 0
        path = ensure_converted(entry, cache=args.cache, file=args.file, trust=args.trust,
                                force=args.force, progress=progress, retries=args.retries,
                                timeout=args.timeout)
        print(path)
        print(_config_hint(entry, path), file=sys.stderr)
        return 0
    except (ZooError, CatalogError, UnknownModelError, ValueError) as e:
        # ValueError covers infomin.convert.ConversionError (the converter's refusals)
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
