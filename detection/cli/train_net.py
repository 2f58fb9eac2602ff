"""``infomin-train-net`` / ``tools/train_net.py``: fine-tune and evaluate Detectron2 detectors.

Detectron2's usual command line (``--config-file``, ``--num-gpus``, ``--num-machines``,
``--machine-rank``, ``--dist-url``, ``--resume``, ``--eval-only`` and trailing ``KEY VALUE``
overrides), run through Detectron2's `launch` for multi-GPU and multi-node jobs, with our
`Trainer` (`infomin.detection.train_net`). Two extra flags register datasets from any folder in
every worker: ``--coco-dataset NAME JSON IMAGE_ROOT`` and ``--voc-dataset NAME DIRNAME SPLIT YEAR``.

The config is checked in the launching process before any worker starts: missing weights or
weights that do not fit the backbone, weights that need the network (fetched now, or refused
naming the URL and cache path), features needing ``detectron2._C``, AMP without CUDA, unknown
datasets, unknown config keys, a pretraining config and an OUTPUT_DIR holding a finished run
(``--resume`` continues it, ``--overwrite`` starts over) fail there, with one message and exit
status 2. The terminal log is concise; OUTPUT_DIR/log.txt has Detectron2's full log
(``--verbose`` prints it all).
"""
import logging
import os
import sys
import textwrap

from detectron2.engine import default_argument_parser, launch

from ..protocol import BATCH_ADVICE
from ..train_net import check_cfg, register_cli_datasets, run, setup_cfg, warn_protocol_batch

__all__ = ["build_parser", "main"]

EPILOG = """
CFG is a YAML file or a packaged config name (detection/coco/*.yaml, detection/voc/*.yaml).
Examples:
  one GPU:    %(prog)s --config-file configs/detection/coco/mask_rcnn_R50_FPN_1x_coco_infomin.yaml \\
                  MODEL.WEIGHTS infomin_r50.pkl
  8 GPUs:     %(prog)s --num-gpus 8 --config-file CFG MODEL.WEIGHTS infomin_r50.pkl
  2 machines: (machine R = 0, 1) %(prog)s --num-gpus 8 --num-machines 2 --machine-rank R \\
                  --dist-url tcp://HOST:PORT --config-file CFG MODEL.WEIGHTS infomin_r50.pkl
  evaluate:   %(prog)s --eval-only --config-file CFG MODEL.WEIGHTS output/model_final.pth
  own data:   %(prog)s --coco-dataset mine_train ann/train.json img/ --config-file CFG \\
                  DATASETS.TRAIN '("mine_train",)' ...

Fewer GPUs:
""" + textwrap.fill(BATCH_ADVICE + " A protocol config (detection/coco, detection/voc, or one "
                    "inheriting from them) run with another global batch is warned about once "
                    "at startup.", width=95, initial_indent="  ", subsequent_indent="  "
                    ).replace("%", "%%") + "\n"


def build_parser():
    parser = default_argument_parser(epilog=EPILOG)
    parser.prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "infomin-train-net"
    parser.description = "Fine-tune or evaluate a Detectron2 detector (infomin configs and heads)."
    parser.add_argument(
        "--coco-dataset", nargs=3, action="append", default=[], metavar=("NAME", "JSON", "IMAGE_ROOT"),
        help="register a COCO-format dataset under NAME (repeatable)")
    parser.add_argument(
        "--voc-dataset", nargs=4, action="append", default=[], metavar=("NAME", "DIRNAME", "SPLIT", "YEAR"),
        help="register a split of a VOC-layout folder under NAME; YEAR 2007 selects the 11-point "
             "VOC07 metric (repeatable)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="train from the start into an OUTPUT_DIR that already holds a run (its checkpoints are "
             "overwritten); without it such a run is refused unless --resume continues it")
    parser.add_argument(
        "--verbose", action="store_true",
        help="also print the environment, the full config and the model on the terminal (they are "
             "always in OUTPUT_DIR/log.txt)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = [opt for opt in args.opts or [] if opt.startswith("--")]
    if flags:  # argparse hands everything after the first KEY to the overrides
        print(f"{parser.prog}: error: {flags[0]} comes after the KEY VALUE overrides; put all "
              "--flags before the first KEY VALUE pair.", file=sys.stderr)
        return 2
    try:
        register_cli_datasets(args)
        cfg = setup_cfg(args)
        check_cfg(cfg, args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"{parser.prog}: error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    warn_protocol_batch(cfg, args, parser.prog)
    logging.getLogger(__name__).info("command line: %s", args)
    launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
