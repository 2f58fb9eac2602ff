#!/usr/bin/env python
"""Sweep one view knob, plot linear accuracy against I_NCE: thin wrapper of infomin-view-sweep."""
from infomin.pretrain.cli.view_sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
