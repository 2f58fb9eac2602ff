#!/usr/bin/env python
"""Convert an SSL ResNet checkpoint for Detectron2: `python tools/convert_pretrained.py IN OUT.pkl`.

Same as the `infomin-convert-pretrained` console script; see docs/converter.md.
"""
import sys

from infomin.cli.convert_pretrained import main

if __name__ == "__main__":
    sys.exit(main())
