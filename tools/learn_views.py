#!/usr/bin/env python
"""Learn a colour-channel view split (InfoMin view learning): thin wrapper of infomin-learn-views."""
from infomin.cli.learn_views import main

if __name__ == "__main__":
    raise SystemExit(main())
