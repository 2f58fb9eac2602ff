#!/usr/bin/env python
"""Fine-tune or evaluate a Detectron2 detector with infomin's configs (same as `infomin-train-net`).

    python tools/train_net.py --config-file configs/detection/coco/mask_rcnn_R50_FPN_1x_coco_infomin.yaml \
        MODEL.WEIGHTS converted.pkl
"""
import sys

from infomin.detection.cli.train_net import main

if __name__ == "__main__":
    sys.exit(main())
