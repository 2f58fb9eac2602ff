"""The Detectron2 extension: extra heads, dataset registration, trainer and weight handlers."""
