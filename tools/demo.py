#!/usr/bin/env python
"""`make demo`: the whole InfoMin study on built-in data (see docs/demo.md, --help)."""
import sys

from infomin.study.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
