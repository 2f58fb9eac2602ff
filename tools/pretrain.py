#!/usr/bin/env python
"""Pretrain an encoder (InfoMin, MoCo v2, ...): see docs/pretraining.md. Same as `infomin-pretrain`."""
import sys

from infomin.pretrain.cli.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
