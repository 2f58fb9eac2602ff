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
import sys

import yaml

from infomin.zoo.catalog import CatalogError, UnknownModelError, ZooEntry, get_entry, load_catalog
from infomin.zoo.download import ZooError, cache_root, checkpoint_path, fetch, import_file
from infomin.zoo.weights import converted_path, ensure_converted

_DET_SHORT = {
    "coco_mask_rcnn_r50_fpn_1x": "COCO FPN-1x", "coco_mask_rcnn_r50_fpn_2x": "COCO FPN-2x",
    "coco_mask_rcnn_r50_fpn_6x": "COCO FPN-6x", "coco_mask_rcnn_r50_c4_1x": "COCO C4-1x",
    "coco_mask_rcnn_r50_c4_2x": "COCO C4-2x", "voc07_12_faster_rcnn_r50_c4_24k": "VOC C4-24k",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="infomin-model-zoo", description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", help="catalogue YAML (default: $INFOMIN_ZOO_CATALOG or the shipped one)")
    p.add_argument("--cache", help="cache folder (default: $INFOMIN_CACHE or ~/.cache/infomin)")
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


def _config_hint(entry: ZooEntry) -> str:
    """Command-line config options (Python literals, as Detectron2's merge_from_list reads them)."""
    if entry.is_detector:
        return (f"evaluate it with: infomin-train-net --eval-only --config-file {entry.config} "
                f"MODEL.WEIGHTS infomin://{entry.name}")
    def literal(v):
        return v if isinstance(v, str) else repr(v).replace(" ", "")
    opts = " ".join(f"{k} {literal(v)}" for k, v in entry.detectron2_settings().items())
    return f"use it with: MODEL.WEIGHTS infomin://{entry.name} {opts}"


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
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
        print(_config_hint(entry), file=sys.stderr)
        return 0
    except (ZooError, CatalogError, UnknownModelError, ValueError) as e:
        # ValueError covers infomin.convert.ConversionError (the converter's refusals)
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
