#!/usr/bin/env python
"""List, download (verified) and convert published checkpoints: see `infomin.cli.model_zoo`."""
import sys

from infomin.cli.model_zoo import main

if __name__ == "__main__":
    sys.exit(main())
