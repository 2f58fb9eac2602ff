"""The pretraining loop: one process or many under torchrun, resumable to the iteration.

`run_pretraining(cfg, resume)` builds data, method, optimizer and schedule from a config and
runs `PretrainTrainer` (one optimizer step per iteration) with hooks that log (TensorBoard,
metrics.jsonl, tqdm), run the kNN monitor, honour stop requests and checkpoint (rank 0,
atomic); it returns the path of the final checkpoint, or of the one written when stopped.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time

import torch

from infomin import checkpoint_format as fmt
from infomin.atomic import atomic_write_text
from infomin.device import DeviceUnavailableError

from . import build, checkpoint as ckpt_io, distributed as du
from .config import validate
from .data import (BadImageTracker, ResumableSampler, RobustImageFolder, WorkerSeeder, build_loader,
                   derive_seed, seed_all)
from .hooks import (KNNHook, MetricsHook, MetricsWriter, PeriodicCheckpointHook, ProgressBarHook, StopHook,
                    check_finite)
from .knn import knn_accuracy
from .optim import build_optimizer, optimizer_impl
from .schedule import build_schedule
from .step import TrainStep, compile_unavailable, prepare_model, resolve_channels_last
from .trainer import TrainerBase

logger = logging.getLogger(__name__)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = fp32). An explicit choice the device cannot honour is an error."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    if name == "fp32":
        return None
    if name == "fp16" and device.type != "cuda":
        raise ValueError("MODEL.PRECISION fp16 needs a CUDA device; use bf16 or fp32 on the CPU.")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


def autocast_context(device: torch.device, amp_dtype: torch.dtype | None):
    """A factory of forward-pass contexts: autocast to `amp_dtype`, or nothing for fp32."""
    if amp_dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=amp_dtype)


class PretrainTrainer(TrainerBase):
    """One step = one batch: fetch it, then `step(batch)` (`infomin.pretrain.step.TrainStep`:
    copy to the device, autocast forward, scaled backward, optimizer and lr steps, momentum
    update). The data iterator is (re)started at each epoch, at the right batch after a resume.

    Per step it leaves `outputs` (the method's tensors), `lr` (of this step) and `data_time`
    for the hooks; `is_log_point(done)` says where hooks may synchronise with the device.
    """

    def __init__(self, *, step: TrainStep, loader, sampler, dataset, seeder, batch: int, iters_per_epoch: int,
                 bad_images, log_period: int, stop_at: int,
                 device_views=None):
        super().__init__()
        self.step, self.loader, self.sampler = step, loader, sampler
        self.dataset, self.seeder, self.batch = dataset, seeder, batch
        self.iters_per_epoch, self.bad_images = iters_per_epoch, bad_images
        self.log_period, self.stop_at = log_period, stop_at
        self.device_views = device_views  # DATA.LOADER gpu: decode + views on the device
        self.outputs, self.lr, self.data_time = {}, 0.0, 0.0
        self._data_iter = None

    @property
    def epoch(self) -> int:
        """The 0-based epoch of the step in progress."""
        return self.iter // self.iters_per_epoch

    def is_log_point(self, done: int) -> bool:
        return done % self.log_period == 0 or done == self.stop_at

    def _start_epoch(self):
        epoch, pos = divmod(self.iter, self.iters_per_epoch)
        self.sampler.set_epoch(epoch, start=pos * self.batch)
        self.dataset.set_epoch(epoch)
        self.seeder.epoch = epoch
        self._data_iter = iter(self.loader)

    def run_step(self):
        if self._data_iter is None:
            self._start_epoch()
        t_data = time.perf_counter()
        data = next(self._data_iter)
        if self.device_views is not None:  # before the bad-image count: it adds undecodable files
            data = self.device_views(data)
        self.data_time = time.perf_counter() - t_data
        self.bad_images.update(data.pop("bad", ()))
        self.lr = self.step.optimizer.param_groups[0]["lr"]
        self.outputs = self.step(data)
        if (self.iter + 1) % self.iters_per_epoch == 0:
            self._data_iter = None  # the epoch is over: let its workers go before the epoch-end hooks


def _knn_loaders(cfg, rank, world):
    transform = build.build_eval_transform(cfg)
    loaders = []
    for split, n in ((cfg.DATA.TRAIN_SPLIT, cfg.KNN.TRAIN_SAMPLES), (cfg.DATA.VAL_SPLIT, cfg.KNN.VAL_SAMPLES)):
        ds = RobustImageFolder(cfg.DATA.ROOT, split, transform, seed=cfg.SEED)
        if n and n < len(ds):  # a fixed random subset, the same in every epoch and run
            g = torch.Generator().manual_seed(derive_seed(cfg.SEED, 0xBEEF))
            ds = torch.utils.data.Subset(ds, torch.randperm(len(ds), generator=g)[:n].tolist())
        sampler = ResumableSampler(len(ds), world, rank, shuffle=False, pad=False)
        loaders.append(build_loader(ds, max(cfg.KNN.IMS_PER_BATCH // world, 1), sampler,
                                    cfg.DATA.NUM_WORKERS, WorkerSeeder(cfg.SEED, rank), drop_last=False))
    return loaders


def _knn_monitor(cfg, encoder, rank, world, device):
    """kNN top-1 of `encoder` on the val split against the train split (loaders made once)."""
    loaders = []

    def monitor() -> float:
        if not loaders:
            loaders.extend(_knn_loaders(cfg, rank, world))
        return knn_accuracy(encoder, *loaders, k=cfg.KNN.K, temperature=cfg.KNN.TEMPERATURE, device=device)

    return monitor


def _payload(cfg, method, optimizer, scheduler, scaler, epoch, iteration, rngs) -> dict:
    return fmt.make_payload(
        arch=cfg.MODEL.ARCH, width=cfg.MODEL.WIDTH, method=cfg.MODEL.METHOD, model=_nchw_state(method),
        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
        epoch=epoch, iteration=iteration, rngs=rngs, config=cfg.dump())


def _nchw_state(method) -> dict:
    """The method's state_dict (metadata kept) in the default layout, whatever MODEL.CHANNELS_LAST."""
    state = method.state_dict()
    for key, value in state.items():
        state[key] = value.contiguous()
    return state


def run_pretraining(cfg, resume: str | None = None) -> str:
    """Train per `cfg`; returns the path of the final checkpoint (OUTPUT_DIR/model_final.pth), or
    of the checkpoint written when the run stopped early (SOLVER.STOP_ITER, SIGTERM/SIGUSR1).

    `resume`: None (fresh), "auto" (newest checkpoint in OUTPUT_DIR, fresh if none) or a path.
    Runs distributed when torch.distributed is initialised (or when launched by torchrun).
    """
    validate(cfg)
    build.check_views_match_method(cfg)
    device = du.resolve_device(cfg.MODEL.DEVICE)
    du.init_distributed(device, cfg.DDP.TIMEOUT_MIN)
    rank, world = du.get_rank(), du.get_world_size()
    main = rank == 0
    amp_dtype = resolve_precision(cfg.MODEL.PRECISION, device)
    channels_last = resolve_channels_last(cfg.MODEL.CHANNELS_LAST, device)
    if cfg.MODEL.COMPILE and compile_unavailable(device):  # say so before any data is read
        raise DeviceUnavailableError(f"MODEL.COMPILE True: {compile_unavailable(device)}; or set MODEL.COMPILE False.")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its kernels

    if cfg.SOLVER.IMS_PER_BATCH % world:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} is the global batch and must divide "
            f"evenly over {world} processes."
        )
    batch = cfg.SOLVER.IMS_PER_BATCH // world
    cfg = build.resolve_for_batch(cfg, batch)  # MODEL.BN_SPLITS auto -> BN groups of 32 images
    files = ckpt_io.CheckpointFiles(cfg.OUTPUT_DIR)
    resume_path = files.resolve_resume(resume)
    resume_state = None
    if resume_path:  # read it before anything is written: a checkpoint of another model is refused
        resume_state = ckpt_io.load_checkpoint(resume_path)
        _check_same_model(resume_path, resume_state, cfg)
    if main:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        atomic_write_text(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), cfg.dump())
        if resume_path is None and files.find_latest():
            logger.warning("OUTPUT_DIR %s already holds checkpoints; starting afresh (use --resume auto "
                           "to continue).", cfg.OUTPUT_DIR)

    # data
    dataset = RobustImageFolder(cfg.DATA.ROOT, cfg.DATA.TRAIN_SPLIT, build.build_train_transform(cfg), seed=cfg.SEED)
    sampler = ResumableSampler(len(dataset), world, rank, shuffle=True, seed=cfg.SEED)
    seeder = WorkerSeeder(cfg.SEED, rank)
    loader = build_loader(dataset, batch, sampler, cfg.DATA.NUM_WORKERS, seeder, drop_last=True,
                          pin_memory=cfg.DATA.PIN_MEMORY and device.type == "cuda")
    device_views = build.build_device_views(cfg, dataset, device)  # DATA.LOADER gpu (else None)
    iters_per_epoch = len(sampler) // batch
    if iters_per_epoch == 0:
        raise ValueError(
            f"The train split has {len(dataset)} images, fewer than one global batch "
            f"(SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH}); lower the batch size."
        )
    if cfg.SOLVER.ITERS_PER_EPOCH > iters_per_epoch:
        logger.warning("SOLVER.ITERS_PER_EPOCH=%d but one pass over %d images is %d iterations; "
                       "an epoch stays one pass.", cfg.SOLVER.ITERS_PER_EPOCH, len(dataset), iters_per_epoch)
    elif cfg.SOLVER.ITERS_PER_EPOCH > 0:
        iters_per_epoch = cfg.SOLVER.ITERS_PER_EPOCH
    total_iters = iters_per_epoch * cfg.SOLVER.EPOCHS
    stop_at = cfg.SOLVER.STOP_ITER if cfg.SOLVER.STOP_ITER > 0 else total_iters
    bad_images = BadImageTracker(len(dataset), cfg.DATA.MAX_BAD_IMAGES, cfg.DATA.MAX_BAD_FRACTION)

    # model: identical initialisation on every rank, then per-rank training randomness
    seed_all(cfg.SEED)
    method = build.build_method(cfg, dataset_size=len(dataset), num_classes=len(dataset.classes)).to(device)
    _check_bn_groups(method.settings, batch, world)
    du.broadcast_module_state(method)
    method = prepare_model(method, device, channels_last=channels_last, compile=cfg.MODEL.COMPILE)
    params = [p for p in method.parameters() if p.requires_grad]
    schedule = build_schedule(cfg.SOLVER, cfg.SOLVER.IMS_PER_BATCH, iters_per_epoch)
    optimizer = build_optimizer(cfg.SOLVER, params, schedule.base_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.multiplier)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    seed_all(derive_seed(cfg.SEED, rank, 0xC0DE))

    period = cfg.CHECKPOINT.PERIOD * iters_per_epoch
    checkpointer = ckpt_io.Checkpointer(
        files,
        payload=lambda rngs, it: _payload(cfg, method, optimizer, scheduler, scaler, it // iters_per_epoch,
                                               it, rngs),
        keep=lambda iteration, final: lambda it: it == iteration or (period > 0 and it % period == 0))

    start_iter = 0
    if resume_path:
        start_iter = _restore(resume_path, resume_state, cfg, method, optimizer, scheduler, scaler)
        if main:
            logger.info("Resumed from %s at iteration %d (epoch %d).", resume_path, start_iter,
                        start_iter // iters_per_epoch)
        if start_iter >= total_iters and os.path.basename(resume_path) == files.final:
            return resume_path
    max_iter = min(stop_at, total_iters)
    if start_iter >= max_iter:  # nothing left to train
        return checkpointer.save(start_iter, final=True)

    model = method
    if du.is_initialized():
        model = du.wrap_ddp(method, device, cfg.DDP.FIND_UNUSED_PARAMETERS)
    model.train()

    step = TrainStep(model=model, method=method, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                     autocast=autocast_context(device, amp_dtype), device=device, channels_last=channels_last)
    trainer = PretrainTrainer(
        step=step, loader=loader, sampler=sampler, dataset=dataset, seeder=seeder, batch=batch,
        iters_per_epoch=iters_per_epoch, bad_images=bad_images, log_period=cfg.LOG.PERIOD, stop_at=stop_at,
        device_views=device_views)
    comm = du.backend_device(device)
    writer = MetricsWriter(cfg.OUTPUT_DIR, main, cfg.LOG.TENSORBOARD)
    checkpoints = PeriodicCheckpointHook(
        checkpointer,
        is_due=lambda done: done % iters_per_epoch == 0 or (
            cfg.CHECKPOINT.ITER_PERIOD > 0 and done % cfg.CHECKPOINT.ITER_PERIOD == 0),
        before_save=lambda done: check_finite(trainer.outputs["loss"], done))
    trainer.register_hooks([
        MetricsHook(writer, bad_images, comm, world),
        ProgressBarHook(total_iters, cfg.MODEL.METHOD) if main and cfg.LOG.PROGRESS_BAR else None,
        StopHook(stop_at, total_iters, comm),
        KNNHook(_knn_monitor(cfg, method.encoder, rank, world, device), writer, iters_per_epoch,
                cfg.SOLVER.EPOCHS, cfg.KNN.PERIOD, main) if cfg.KNN.ENABLED else None,
        checkpoints,  # last: saves what the hooks before it decided (stop, epoch end)
    ])
    logger.info("Training %s: %d epochs x %d iterations, global batch %d (%d per process), lr %.4g; "
                "%s, %s, %s %s%s", cfg.MODEL.METHOD, cfg.SOLVER.EPOCHS, iters_per_epoch, cfg.SOLVER.IMS_PER_BATCH,
                batch, schedule.base_lr, "fp32" if amp_dtype is None else f"{amp_dtype} autocast",
                "channels-last" if channels_last else "NCHW", optimizer_impl(optimizer), cfg.SOLVER.OPTIMIZER,
                ", compiled encoders" if cfg.MODEL.COMPILE else "")
    trainer.train(start_iter, max_iter)
    return checkpoints.last_path


def _check_bn_groups(settings: dict, batch: int, world: int) -> None:
    """Refuse a batch that BN_SPLITS cannot divide; say when SHUFFLE_BN can do nothing."""
    splits = settings.get("bn_splits", 1)
    if batch % splits:
        raise ValueError(
            f"MODEL.BN_SPLITS={splits} must divide the batch per process ({batch} = "
            f"SOLVER.IMS_PER_BATCH / {world} processes); change one of them."
        )
    if world == 1 and settings.get("shuffle_bn") and splits == 1:
        logger.warning(
            "MODEL.SHUFFLE_BN has no effect on one process with BatchNorm over the whole batch: the "
            "network can tell this batch's keys from the queue's by their BatchNorm statistics. Set "
            "MODEL.BN_SPLITS (e.g. 8) to split BatchNorm into groups as MoCo's single-GPU recipe does.")


# settings that may change when a run is resumed without changing the model's weights
_RUNTIME_MODEL_KEYS = ("MODEL.DEVICE", "MODEL.PRECISION", "MODEL.CHANNELS_LAST", "MODEL.COMPILE")


def _flat(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def config_differences(stored_yaml: str, cfg, prefix: str = "", skip=()) -> list[str]:
    """`KEY stored -> current` for every setting under `prefix` that differs between a
    checkpoint's stored config and `cfg` (keys in `skip` left out)."""
    from .config import cfg_from_yaml_string

    try:
        old = dict(_flat(cfg_from_yaml_string(stored_yaml)))
    except Exception:  # a config from another version: nothing to compare against
        return []
    return [f"{k} {old.get(k)!r} -> {v!r}" for k, v in _flat(cfg)
            if k.startswith(prefix) and k not in skip and old.get(k) != v]


def _check_same_model(path: str, state: dict, cfg) -> None:
    """A checkpoint of another model (MODEL.* differs) cannot be continued: say which setting."""
    diffs = config_differences(state.get("config", ""), cfg, "MODEL.", _RUNTIME_MODEL_KEYS)
    if diffs:
        raise ValueError(
            f"--resume {path}: that checkpoint was trained with other model settings "
            f"({'; '.join(diffs)}, checkpoint -> now); resume with the checkpoint's settings, "
            "or give a new OUTPUT_DIR to start another run.")


def _restore(path, state, cfg, method, optimizer, scheduler, scaler) -> int:
    """Load a checkpoint into the training objects and this rank's RNGs; returns its iteration."""
    seed = cfg.SEED
    try:
        method.load_state_dict(state["model"])
    except RuntimeError as err:  # the same MODEL.*, yet other shapes: the data (bank size, classes)
        diffs = config_differences(state.get("config", ""), cfg, skip=("OUTPUT_DIR",))
        raise ValueError(
            f"--resume {path}: the checkpoint's weights do not fit this run's model "
            f"({str(err).splitlines()[0]}); settings that differ (checkpoint -> now): "
            f"{'; '.join(diffs) or 'none; the data differs (number of images or classes)'}. "
            "Resume with the checkpoint's settings and data, or give a new OUTPUT_DIR.") from None
    impl = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])
    for group, flags in zip(optimizer.param_groups, impl):  # this run's OPTIMIZER_IMPL, not the saved one
        group.update(flags)
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    iteration = int(state["iteration"])
    ranks = state["rng"].get("ranks") or [state["rng"]]
    rank, world = du.get_rank(), du.get_world_size()

    def reseed():
        logger.warning("Checkpoint was written by %d processes, now %d: RNG streams are reseeded, "
                       "so the run continues correctly but not bit-identically.", len(ranks), world)
        seed_all(derive_seed(seed, rank, iteration))

    ckpt_io.restore_rng(ranks, reseed)
    return iteration
