"""The Detectron2 extension's command, `train_net` (infomin-train-net, tools/train_net.py)."""
