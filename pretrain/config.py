"""The pretraining config: fvcore/yacs `CfgNode` defaults, `_BASE_` YAML inheritance, CLI opts.

Method presets live in `configs/pretrain/*.yaml` and are merged before the user's KEY VALUE
opts, so an explicit user setting always wins. Keys left at None mean "the method's (or the
view policy's) own reference default", which `infomin.methods` / `infomin.views` supply.
"""
from __future__ import annotations

from infomin.config import CfgNode
from infomin.config import load_cfg as _load_cfg
from .optim import IMPLS, OPTIMIZERS


def get_cfg() -> CfgNode:
    """A fresh copy of all defaults (the InfoMin R-50 recipe where the reference fixes one)."""
    C = CfgNode()
    C.OUTPUT_DIR = "./output/pretrain"
    C.SEED = 0

    C.MODEL = CfgNode()
    # InsDis, CMC, MoCo, PIRL, MoCov2, CMCv2, InfoMin, Supervised (infomin.methods.METHODS)
    C.MODEL.METHOD = "InfoMin"
    C.MODEL.ARCH = "resnet50"
    C.MODEL.WIDTH = None  # 1; PyContrast width multiplier (2 = R50x2, 0.5 = a CMC stream)
    C.MODEL.DEVICE = "auto"  # auto | cpu | cuda | cuda:N
    C.MODEL.PRECISION = "auto"  # auto (bf16 on GPUs that have it, else fp32) | fp32 | bf16 | fp16
    C.MODEL.CHANNELS_LAST = None  # None (= auto: on CUDA, off on the CPU) | True | False
    C.MODEL.COMPILE = False  # torch.compile the encoders (needs Triton on GPU, a C++ compiler on CPU)
    _add_method_settings(C.MODEL)  # FEAT_DIM, HEAD, TEMPERATURE, ... (None = the method's value)

    C.DATA = CfgNode()
    C.DATA.ROOT = "./datasets/imagenet"  # ROOT/<split>/<class>/<image>
    C.DATA.TRAIN_SPLIT = "train"
    C.DATA.VAL_SPLIT = "val"
    C.DATA.NUM_WORKERS = 8  # per process
    C.DATA.PIN_MEMORY = True
    # cpu: workers decode and augment (infomin.views); gpu: workers only read the JPEG bytes and draw
    # the same parameters, the training device decodes (nvJPEG) and augments whole batches
    # (infomin.views.device; on MODEL.DEVICE cpu the same batched code runs on CPU tensors)
    C.DATA.LOADER = "cpu"
    # unreadable/truncated images are skipped and reported; the run stops past either limit
    C.DATA.MAX_BAD_IMAGES = 100
    C.DATA.MAX_BAD_FRACTION = 0.001

    # passed to infomin.views.build_multiview_transform. POLICY/CROP_MIN/COLOR_SPACE None = the
    # method's views (infomin.methods.METHOD_VIEWS); the knobs' None = the policy's own value
    C.VIEWS = CfgNode()
    C.VIEWS.POLICY = None
    C.VIEWS.IMAGE_SIZE = 224
    C.VIEWS.COLOR_SPACE = None
    C.VIEWS.JIGSAW = None  # None = follow the method's jigsaw setting
    C.VIEWS.JIGSAW_CROP = 255  # jigsaw: RandomResizedCrop size, cut into a 3x3 grid ...
    C.VIEWS.JIGSAW_TILE = 64  # ... of tiles this big (each jittered inside its cell)
    C.VIEWS.EVAL_RESIZE = 0  # 0 = IMAGE_SIZE * 256 / 224
    # one key per knob of the registered view stages (CROP_MIN, JITTER_STRENGTH, BLUR_PROB,
    # RA_MAGNITUDE, and any stage registered before this runs); None = the policy's own value
    # (CROP_MIN: the method's, infomin.methods.METHOD_VIEWS)
    from infomin.views import STAGES

    for knob in STAGES.knobs():
        C.VIEWS[knob.upper()] = None

    C.SOLVER = CfgNode()
    C.SOLVER.OPTIMIZER = "SGD"  # SGD (the reference) | AdamW (MOMENTUM unused)
    C.SOLVER.OPTIMIZER_IMPL = "auto"  # auto (fused on CUDA, else foreach) | fused | foreach | for_loop
    C.SOLVER.IMS_PER_BATCH = 256  # global batch, split evenly over processes
    C.SOLVER.BASE_LR = 0.03  # at REFERENCE_BATCH; scaled linearly with the global batch
    C.SOLVER.REFERENCE_BATCH = 256
    C.SOLVER.SCALE_LR = True
    C.SOLVER.MOMENTUM = 0.9
    C.SOLVER.WEIGHT_DECAY = 1e-4
    C.SOLVER.EPOCHS = 200
    C.SOLVER.ITERS_PER_EPOCH = 0  # 0 = one pass over the data; >0 caps it (tiny runs)
    C.SOLVER.SCHEDULE = "cosine"  # cosine | step
    C.SOLVER.STEPS = (120, 160)  # epochs after which the step schedule multiplies by GAMMA
    C.SOLVER.GAMMA = 0.1
    C.SOLVER.COSINE_MIN_FACTOR = None  # None = GAMMA ** 3, as the reference
    C.SOLVER.WARMUP_EPOCHS = -1  # -1 = reference rule: 5 (10 if EPOCHS > 500) when batch > 256
    C.SOLVER.WARMUP_FROM = 0.01  # absolute lr at the first warm-up iteration
    C.SOLVER.STOP_ITER = 0  # >0: checkpoint and stop at this iteration (job time limits)

    C.CHECKPOINT = CfgNode()
    C.CHECKPOINT.PERIOD = 20  # epochs; these checkpoints are kept, the others are rolling
    C.CHECKPOINT.ITER_PERIOD = 0  # >0: also a rolling checkpoint every N iterations

    C.LOG = CfgNode()
    C.LOG.PERIOD = 10  # iterations between TensorBoard/metrics.jsonl records
    C.LOG.TENSORBOARD = True
    C.LOG.PROGRESS_BAR = True

    C.KNN = CfgNode()  # per-epoch weighted-kNN monitor (train split bank, val split queries)
    C.KNN.ENABLED = True
    C.KNN.PERIOD = 1
    C.KNN.K = 200
    C.KNN.TEMPERATURE = 0.07
    C.KNN.TRAIN_SAMPLES = 0  # 0 = whole train split; >0 = a fixed random subset
    C.KNN.VAL_SAMPLES = 0
    C.KNN.IMS_PER_BATCH = 256

    C.DDP = CfgNode()
    C.DDP.FIND_UNUSED_PARAMETERS = False
    C.DDP.TIMEOUT_MIN = 30

    C.LINEAR = CfgNode()  # the reference linear protocol (pycontrast main_linear.py)
    C.LINEAR.ENCODER = "online"  # online | ema
    C.LINEAR.EPOCHS = 60
    C.LINEAR.ITERS_PER_EPOCH = 0
    C.LINEAR.BASE_LR = 30.0  # at REFERENCE_BATCH = SOLVER.REFERENCE_BATCH
    C.LINEAR.SCALE_LR = False
    C.LINEAR.STEPS = (30, 40, 50)
    C.LINEAR.GAMMA = 0.2
    C.LINEAR.OPTIMIZER = "SGD"  # SGD (the reference) | AdamW (MOMENTUM unused)
    C.LINEAR.MOMENTUM = 0.9
    C.LINEAR.WEIGHT_DECAY = 0.0
    C.LINEAR.IMS_PER_BATCH = 256
    # NULL (crop + flip) | RA (adds RandAugment rand-n2-m10-mstd0.5) | None = what the method's
    # published number used (infomin.methods.METHOD_LINEAR: RA, CMC and Supervised NULL)
    C.LINEAR.AUG = None
    C.LINEAR.CROP_MIN = 0.2
    C.LINEAR.NUM_CLASSES = 0  # 0 = number of class folders
    C.LINEAR.OUTPUT_DIR = ""  # "" = OUTPUT_DIR/linear_eval
    return C


def _add_method_settings(model: CfgNode) -> None:
    """MODEL.<NAME> = None for every setting a registered method declares (infomin.methods:
    `Setting.help` says what each does); None means the method's reference value (METHOD_DEFAULTS)."""
    from infomin.methods import declared_settings

    for name in declared_settings():
        key = name.upper()
        if key in ("ARCH", "WIDTH"):
            continue
        if key in model:
            raise ValueError(f"method setting {name!r} would be MODEL.{key}, which the config already "
                             "has for something else; rename the setting")
        model[key] = None


def load_cfg(path: str | None, opts: list[str] | None = None) -> CfgNode:
    """Defaults <- YAML file (with its `_BASE_` chain) <- KEY VALUE opts; returned frozen."""
    return _load_cfg(get_cfg, path, opts, validate)


def cfg_from_yaml_string(text: str) -> CfgNode:
    """Rebuild a config stored in a checkpoint (keys unknown to this version are an error)."""
    cfg = get_cfg()
    cfg.merge_from_other_cfg(CfgNode(CfgNode.load_cfg(text)))
    return cfg


_CHOICES = {
    "MODEL.PRECISION": ("auto", "fp32", "bf16", "fp16"),
    "SOLVER.OPTIMIZER": tuple(OPTIMIZERS),
    "SOLVER.OPTIMIZER_IMPL": IMPLS,
    "MODEL.CHANNELS_LAST": (None, "auto", True, False),
    "MODEL.COMPILE": (True, False),
    "SOLVER.SCHEDULE": ("cosine", "step"),
    "LINEAR.OPTIMIZER": tuple(OPTIMIZERS),
    "LINEAR.AUG": (None, "NULL", "RA"),
    "LINEAR.ENCODER": ("online", "ema"),
    "DATA.LOADER": ("cpu", "gpu"),
}


def validate(cfg: CfgNode) -> None:
    """Reject values that would only fail (or silently misbehave) much later."""
    for key, choices in _CHOICES.items():
        sec, name = key.split(".")
        if cfg[sec][name] not in choices:
            raise ValueError(f"{key} must be one of {choices}, got {cfg[sec][name]!r}.")
    for key in ("SOLVER.IMS_PER_BATCH", "SOLVER.EPOCHS", "LINEAR.IMS_PER_BATCH", "LINEAR.EPOCHS"):
        sec, name = key.split(".")
        if int(cfg[sec][name]) < 1:
            raise ValueError(f"{key} must be >= 1, got {cfg[sec][name]!r}.")
    from .build import check_method_settings

    check_method_settings(cfg)  # MODEL.METHOD, MODEL.ARCH, ... by the method's own rules
