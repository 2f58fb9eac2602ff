"""`infomin-convert-pretrained IN OUT`: the converter's command line."""
from __future__ import annotations

import argparse
import sys

from infomin.convert import FORMATS, ConversionError, convert_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infomin-convert-pretrained",
        description="Convert the ResNet backbone of a self-supervised (or torchvision) checkpoint "
                    "into a Detectron2 model-zoo .pkl, dropping heads, queues and fc.")
    parser.add_argument("input", metavar="IN", help="checkpoint file (.pth/.pt/.ckpt)")
    parser.add_argument("output", metavar="OUT", help="Detectron2 weights to write (.pkl)")
    parser.add_argument("--format", default="auto", choices=("auto",) + FORMATS,
                        help="checkpoint layout (default: detect it)")
    parser.add_argument("--ema", action="store_true",
                        help="convert the momentum (EMA) encoder instead of the online one")
    parser.add_argument("--trust", action="store_true",
                        help="allow full unpickling of IN (can run code stored in the file; "
                             "only for files from a source you trust)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = convert_checkpoint(args.input, args.output, fmt=args.format, ema=args.ema,
                                     trust=args.trust)
    except ConversionError as exc:
        print(f"infomin-convert-pretrained: error: {exc}", file=sys.stderr)
        print("No output file was written.", file=sys.stderr)
        return 2
    print(summary.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
