#!/usr/bin/env python
"""List, download (verified) and convert published checkpoints: see `infomin.zoo.cli`."""
import sys

from infomin.zoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
