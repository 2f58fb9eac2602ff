#!/usr/bin/env python
"""Estimate I_NCE between the two views of a policy: thin wrapper of infomin-estimate-mi."""
from infomin.cli.estimate_mi import main

if __name__ == "__main__":
    raise SystemExit(main())
