"""The pretraining loop: one process or many under torchrun, resumable to the iteration.

`run_pretraining(cfg, resume)` builds data, method, optimizer and schedule from a config, trains,
checkpoints (rank 0, atomic), logs (tqdm bar, TensorBoard, metrics.jsonl) and runs the kNN
monitor, then returns the path of the final checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time

import torch
from torch.nn.parallel import DistributedDataParallel

from . import build, checkpoint as ckpt_io, distributed as du
from .config import validate
from .data import (BadImageTracker, ResumableSampler, RobustImageFolder, WorkerSeeder, build_loader,
                   derive_seed, seed_all)
from .knn import knn_accuracy
from .schedule import build_schedule

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


class _StopFlag:
    """Set by SIGTERM/SIGUSR1 (cluster pre-emption): finish the step, checkpoint, exit cleanly."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second signal: the user (or scheduler) means it, stop now
            raise SystemExit(128 + signum)
        logger.warning("Received signal %d: will checkpoint and stop at the next log point "
                       "(send it again to stop immediately).", signum)
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Metrics:
    """Rank-0 sinks: TensorBoard and a JSON-lines file (one record per log period / epoch)."""

    def __init__(self, cfg, enabled: bool):
        self.enabled = enabled
        self.writer = None
        self.path = os.path.join(cfg.OUTPUT_DIR, "metrics.jsonl")
        if enabled and cfg.LOG.TENSORBOARD:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.path.join(cfg.OUTPUT_DIR, "tb"))

    def write(self, step: int, record: dict):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"iteration": step, **record}) + "\n")
        if self.writer is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self.writer.add_scalar(k, v, step)

    def close(self):
        if self.writer is not None:
            self.writer.close()


def _scalars(out: dict) -> dict:
    return {k: v.detach().float() for k, v in out.items()
            if torch.is_tensor(v) and v.numel() == 1}


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


def build_payload(cfg, method, optimizer, scheduler, scaler, epoch, iteration, rngs) -> dict:
    state = {k: v.detach().cpu() for k, v in method.state_dict().items()}
    return {
        "format": ckpt_io.FORMAT,
        "format_version": ckpt_io.FORMAT_VERSION,
        "arch": cfg.MODEL.ARCH,
        "width": _width(cfg.MODEL.WIDTH),
        "method": cfg.MODEL.METHOD,
        "model": state,
        "model_ema": None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": int(epoch),
        "iteration": int(iteration),
        "rng": {**rngs[0], "ranks": rngs},
        "config": cfg.dump(),
    }


def run_pretraining(cfg, resume: str | None = None) -> str:
    """Train per `cfg`; returns the path of the final checkpoint (OUTPUT_DIR/model_final.pth).

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
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its kernels

    if cfg.SOLVER.IMS_PER_BATCH % world:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} is the global batch and must divide "
            f"evenly over {world} processes."
        )
    batch = cfg.SOLVER.IMS_PER_BATCH // world
    resume_path = ckpt_io.resolve_resume(resume, cfg.OUTPUT_DIR)
    if main:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        ckpt_io.atomic_write_text(cfg.dump(), os.path.join(cfg.OUTPUT_DIR, "config.yaml"))
        if resume_path is None and ckpt_io.find_latest(cfg.OUTPUT_DIR):
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
    bad_images = BadImageTracker(len(dataset), cfg.DATA.MAX_BAD_IMAGES, cfg.DATA.MAX_BAD_FRACTION)

    # model: identical initialisation on every rank, then per-rank training randomness
    seed_all(cfg.SEED)
    method = build.build_method(cfg, dataset_size=len(dataset), num_classes=len(dataset.classes)).to(device)
    _check_bn_groups(method.settings, batch, world)
    du.broadcast_module_state(method)
    params = [p for p in method.parameters() if p.requires_grad]
    schedule = build_schedule(cfg.SOLVER, cfg.SOLVER.IMS_PER_BATCH, iters_per_epoch)
    optimizer = torch.optim.SGD(params, lr=schedule.base_lr, momentum=cfg.SOLVER.MOMENTUM,
                                weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.multiplier)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    seed_all(derive_seed(cfg.SEED, rank, 0xC0DE))

    start_iter = 0
    if resume_path:
        start_iter = _restore(resume_path, method, optimizer, scheduler, scaler, cfg.SEED)
        if main:
            logger.info("Resumed from %s at iteration %d (epoch %d).", resume_path, start_iter,
                        start_iter // iters_per_epoch)
        if start_iter >= total_iters:
            if os.path.basename(resume_path) == ckpt_io.FINAL_NAME:
                return resume_path
            return _finish(cfg, method, optimizer, scheduler, scaler, start_iter, iters_per_epoch, main)

    model = method
    if du.is_initialized():
        model = DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False,  # queues stay equal by construction; BN stats are per rank
            find_unused_parameters=cfg.DDP.FIND_UNUSED_PARAMETERS)
    model.train()

    metrics = _Metrics(cfg, main)
    knn_loaders = None
    bar = None
    if main and cfg.LOG.PROGRESS_BAR:
        from tqdm import tqdm

        bar = tqdm(total=total_iters, initial=start_iter, dynamic_ncols=True, desc=cfg.MODEL.METHOD)

    iteration = start_iter
    stop_at = cfg.SOLVER.STOP_ITER if cfg.SOLVER.STOP_ITER > 0 else total_iters
    comm = du.backend_device(device)
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    logger.info("Training %s: %d epochs x %d iterations, global batch %d (%d per process), lr %.4g",
                cfg.MODEL.METHOD, cfg.SOLVER.EPOCHS, iters_per_epoch, cfg.SOLVER.IMS_PER_BATCH, batch,
                schedule.base_lr)
    try:
        with _StopFlag() as stop_flag:
            while iteration < min(stop_at, total_iters):
                epoch, pos = divmod(iteration, iters_per_epoch)
                sampler.set_epoch(epoch, start=pos * batch)
                dataset.set_epoch(epoch)
                seeder.epoch = epoch
                data_iter = iter(loader)
                t_data = time.perf_counter()
                for _ in range(pos, iters_per_epoch):
                    data = next(data_iter)
                    if device_views is not None:  # DATA.LOADER gpu: decode + views on the device
                        data = device_views(data)  # (before the bad-image count: it adds undecodable files)
                    data_time = time.perf_counter() - t_data
                    bad_images.update(data.pop("bad", ()))
                    data = {k: v.to(device, non_blocking=True) for k, v in data.items() if torch.is_tensor(v)}
                    lr = optimizer.param_groups[0]["lr"]
                    out = _train_step(model, method, data, optimizer, scheduler, scaler, autocast)
                    iteration += 1
                    if bar is not None:
                        bar.update(1)
                    if (cfg.CHECKPOINT.ITER_PERIOD and iteration % cfg.CHECKPOINT.ITER_PERIOD == 0
                            and iteration % iters_per_epoch and iteration != stop_at):
                        _check_finite(out["loss"], iteration)
                        _save(cfg, method, optimizer, scheduler, scaler, iteration, iters_per_epoch, main)
                    if iteration % cfg.LOG.PERIOD and iteration != stop_at:
                        t_data = time.perf_counter()
                        continue  # no host sync between log points

                    bad_images.check(du.all_reduce_sum(torch.tensor([len(bad_images.paths)], device=comm)).item())
                    record = _reduce_scalars(out, comm, world, iteration)
                    record.update(lr=lr, data_time=data_time, epoch=epoch)
                    metrics.write(iteration, record)
                    if bar is not None:
                        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.4g}",
                                        data=f"{data_time:.3f}s", epoch=epoch)
                    stop = _agree(stop_flag.requested, comm)  # at log points: signals wait a few steps
                    if (stop or iteration == stop_at) and iteration < total_iters:
                        _save(cfg, method, optimizer, scheduler, scaler, iteration, iters_per_epoch, main)
                        logger.info("Stopped at iteration %d; continue with --resume auto.", iteration)
                        return os.path.join(cfg.OUTPUT_DIR, ckpt_io.checkpoint_name(iteration))
                    t_data = time.perf_counter()
                del data_iter

                # end of epoch: monitor and checkpoint
                done = epoch + 1
                if cfg.KNN.ENABLED and (done % cfg.KNN.PERIOD == 0 or done == cfg.SOLVER.EPOCHS):
                    knn_loaders = knn_loaders or _knn_loaders(cfg, rank, world)
                    acc = knn_accuracy(method.encoder, *knn_loaders, k=cfg.KNN.K,
                                       temperature=cfg.KNN.TEMPERATURE, device=device)
                    metrics.write(iteration, {"knn_top1": acc, "epoch": epoch})
                    if main:
                        logger.info("epoch %d: kNN top-1 %.2f%%", done, acc)
                if iteration % iters_per_epoch == 0 and iteration < total_iters:
                    _check_finite(out["loss"], iteration)
                    _save(cfg, method, optimizer, scheduler, scaler, iteration, iters_per_epoch, main)
    finally:
        if bar is not None:
            bar.close()
        metrics.close()
    return _finish(cfg, method, optimizer, scheduler, scaler, iteration, iters_per_epoch, main)


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


def _restore(path, method, optimizer, scheduler, scaler, seed) -> int:
    """Load a checkpoint into the training objects and this rank's RNGs; returns its iteration."""
    state = ckpt_io.load_checkpoint(path)
    method.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    iteration = int(state["iteration"])
    ranks = state["rng"].get("ranks") or [state["rng"]]
    rank, world = du.get_rank(), du.get_world_size()
    if len(ranks) == world:
        ckpt_io.set_rng_state(ranks[rank])
    else:
        logger.warning("Checkpoint was written by %d processes, now %d: RNG streams are reseeded, "
                       "so the run continues correctly but not bit-identically.", len(ranks), world)
        seed_all(derive_seed(seed, rank, iteration))
    return iteration


def _train_step(model, method, data, optimizer, scheduler, scaler, autocast) -> dict:
    """One optimizer step (autocast forward, scaled backward, lr step, EMA update)."""
    with autocast():
        out = model(data)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(out["loss"]).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    method.momentum_update()
    return out


def _check_finite(loss: torch.Tensor, iteration: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"Loss is {loss.item()} at iteration {iteration}; lower SOLVER.BASE_LR or use MODEL.PRECISION fp32.")


def _reduce_scalars(out: dict, comm, world: int, iteration: int) -> dict:
    """The method's logged scalars averaged over ranks (a NaN loss stops the run here)."""
    _check_finite(out["loss"], iteration)
    vals = _scalars(out)
    names = sorted(vals)
    stacked = torch.stack([vals[n] for n in names]).to(comm)
    du.all_reduce_sum(stacked)
    return {n: float(v) / world for n, v in zip(names, stacked)}


def _agree(flag: bool, comm) -> bool:
    """True on every rank if any rank was asked to stop."""
    if not du.is_initialized():
        return flag
    t = torch.tensor([float(flag)], device=comm)
    du.all_reduce_sum(t)
    return bool(t.item() > 0)


def _save(cfg, method, optimizer, scheduler, scaler, iteration, iters_per_epoch, main, name=None):
    rngs = du.all_gather_object(ckpt_io.rng_state())
    if main:
        path = os.path.join(cfg.OUTPUT_DIR, name or ckpt_io.checkpoint_name(iteration))
        payload = build_payload(cfg, method, optimizer, scheduler, scaler, iteration // iters_per_epoch,
                                iteration, rngs)
        ckpt_io.atomic_torch_save(payload, path)
        period = cfg.CHECKPOINT.PERIOD * iters_per_epoch
        ckpt_io.prune(cfg.OUTPUT_DIR, lambda it: it == iteration or (period > 0 and it % period == 0))
        logger.info("Saved %s", path)
    du.barrier()


def _finish(cfg, method, optimizer, scheduler, scaler, iteration, iters_per_epoch, main) -> str:
    _save(cfg, method, optimizer, scheduler, scaler, iteration, iters_per_epoch, main, name=ckpt_io.FINAL_NAME)
    return os.path.join(cfg.OUTPUT_DIR, ckpt_io.FINAL_NAME)


def _width(value) -> int | float:
    value = 1 if value is None else value
    return int(value) if float(value).is_integer() else float(value)
