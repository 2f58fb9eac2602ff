#!/usr/bin/env python
"""Linear evaluation of a pretraining checkpoint: see docs/pretraining.md. Same as `infomin-linear-eval`."""
import sys

from infomin.pretrain.cli.linear_eval import main

if __name__ == "__main__":
    sys.exit(main())
