"""The study's command, `demo` (infomin-demo, `make demo`, tools/demo.py)."""
