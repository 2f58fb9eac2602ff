"""`infomin-linear-eval`: the reference linear protocol on a frozen pretrained encoder.

Frozen encoder in eval mode (BN running stats), pooled features, one linear layer trained by
SGD lr 30 (momentum 0.9, no weight decay) for 60 epochs with x0.2 decays after epochs 30, 40
and 50; training crops RandomResizedCrop(0.2-1) + flip, optionally RandAugment. Distributed like
pretraining (only the classifier is wrapped in DDP; every rank evaluates its share of val and
the counts are summed), resumable per epoch, reporting top-1/top-5 in percent.

    torchrun --nproc_per_node 8 tools/linear_eval.py --checkpoint out/model_final.pth DATA.ROOT /imagenet
"""
from __future__ import annotations

import json
import logging
import os

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from infomin import checkpoint_format as fmt
from infomin.atomic import atomic_write_text
from infomin.models import TwoStreamEncoder, build_encoder

from . import build, checkpoint as ckpt_io, distributed as du
from .config import validate
from .data import BadImageTracker, ResumableSampler, RobustImageFolder, WorkerSeeder, build_loader, derive_seed, seed_all
from .engine import autocast_context, resolve_precision
from .hooks import PeriodicCheckpointHook
from .optim import build_optimizer
from .schedule import Schedule, scaled_lr
from .trainer import HookBase, TrainerBase

logger = logging.getLogger(__name__)
LINEAR_FORMAT = "infomin.linear"
STATE_NAME = "linear_checkpoint.pth"
FINAL_NAME = "linear_final.pth"


def load_encoder(cfg, checkpoint: str, which: str = "online") -> torch.nn.Module:
    """The pretrained encoder (frozen, eval mode) of an infomin pretraining checkpoint."""
    state = ckpt_io.load_checkpoint(checkpoint)
    if state.get("arch") != cfg.MODEL.ARCH or state.get("method") != cfg.MODEL.METHOD:
        raise ValueError(
            f"{checkpoint} holds a {state.get('method')} {state.get('arch')} model but the config says "
            f"{cfg.MODEL.METHOD} {cfg.MODEL.ARCH}; run without --config-file to use the checkpoint's own config."
        )
    weights = fmt.encoder_state(state, which)
    if not weights:
        raise ValueError(f"{checkpoint} has no {fmt.ENCODER_PREFIXES[which]}* weights (LINEAR.ENCODER {which}); "
                         "bank and supervised methods have no EMA encoder, use LINEAR.ENCODER online.")
    # just the encoder, as the checkpoint describes it (a CMC encoder is two half-width streams)
    encoder = (TwoStreamEncoder if fmt.is_two_stream(weights) else build_encoder)(state["arch"], state["width"])
    encoder.load_state_dict(weights, strict=True)
    encoder.requires_grad_(False)
    return encoder.eval()


def _topk_hits(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    return [int(hit[:, :k].any(1).sum()) for k in ks]


def _loader(cfg, split, transform, rank, world, batch, shuffle, seed_extra):
    ds = RobustImageFolder(cfg.DATA.ROOT, split, transform, seed=derive_seed(cfg.SEED, seed_extra))
    sampler = ResumableSampler(len(ds), world, rank, shuffle=shuffle, seed=cfg.SEED, pad=shuffle)
    loader = build_loader(ds, batch, sampler, cfg.DATA.NUM_WORKERS, WorkerSeeder(cfg.SEED, rank),
                          drop_last=False, pin_memory=False)
    return ds, sampler, loader


def _features(encoder, images, autocast):
    with torch.no_grad(), autocast():
        return encoder(images).float().flatten(1)


def evaluate(encoder, classifier, loader, device, autocast) -> dict:
    """top-1/top-5 (percent) over the whole split, summed across ranks."""
    comm = du.backend_device(device)
    counts = torch.zeros(3, dtype=torch.float64)
    classifier.eval()
    with torch.no_grad():
        for batch in loader:
            for entry in batch.get("bad", ()):
                if entry:
                    logger.warning("Evaluation skipped unreadable image(s): %s", entry)
            x, y = batch["image"].to(device), batch["label"].to(device)
            logits = classifier(_features(encoder, x, autocast))
            counts += torch.tensor(_topk_hits(logits, y) + [len(y)], dtype=torch.float64)
    classifier.train()
    counts = du.all_reduce_sum(counts.to(comm)).cpu()
    if counts[2] == 0:
        raise ValueError("The validation split is empty.")
    return {"top1": float(100 * counts[0] / counts[2]), "top5": float(100 * counts[1] / counts[2])}


class LinearTrainer(TrainerBase):
    """One step = one batch through the frozen encoder and a cross-entropy step of the classifier;
    `max_iter` is LINEAR.EPOCHS x iters_per_epoch. `history` holds one result per finished epoch."""

    def __init__(self, *, encoder, model, loader, sampler, optimizer, scheduler, autocast, device,
                 iters_per_epoch: int, bad_images, history: list):
        super().__init__()
        self.encoder, self.model, self.loader, self.sampler = encoder, model, loader, sampler
        self.optimizer, self.scheduler, self.autocast, self.device = optimizer, scheduler, autocast, device
        self.iters_per_epoch, self.bad_images, self.history = iters_per_epoch, bad_images, history
        self.loss = None
        self._data_iter = None

    def run_step(self):
        if self._data_iter is None:
            epoch = self.iter // self.iters_per_epoch
            self.sampler.set_epoch(epoch)
            self.loader.dataset.set_epoch(epoch)
            self._data_iter = iter(self.loader)
        data = next(self._data_iter)
        self.bad_images.update(data.pop("bad", ()))
        feats = _features(self.encoder, data["image"].to(self.device, non_blocking=True), self.autocast)
        loss = F.cross_entropy(self.model(feats), data["label"].to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.loss = loss
        if (self.iter + 1) % self.iters_per_epoch == 0:
            self._data_iter = None


class EpochEvalHook(HookBase):
    """At each epoch end: the bad-image limit, then top-1/top-5 on the val split into `history`."""

    def __init__(self, classifier, val_loader, epochs: int, comm):
        self.classifier, self.val_loader, self.epochs, self.comm = classifier, val_loader, epochs, comm

    def after_step(self):
        t = self.trainer
        done = t.iter + 1
        if done % t.iters_per_epoch:
            return
        bad = t.bad_images
        bad.check(du.all_reduce_sum(torch.tensor([len(bad.paths)], device=self.comm)).item())
        result = evaluate(t.encoder, self.classifier, self.val_loader, t.device, t.autocast)
        result.update(epoch=done // t.iters_per_epoch, loss=t.loss.item())
        t.history.append(result)
        t.storage.update(result)
        logger.info("linear eval epoch %d/%d: top-1 %.2f top-5 %.2f (loss %.4f)", result["epoch"],
                    self.epochs, result["top1"], result["top5"], result["loss"])


def run_linear_eval(cfg, checkpoint: str, resume: str | None = None) -> dict:
    """Train and evaluate a linear classifier on `checkpoint`'s frozen encoder.

    Returns {"top1", "top5", "best_top1", "epoch"} of the last epoch (percent). `resume`: None,
    "auto" (the state in the output dir, fresh if none) or a path. Output: LINEAR.OUTPUT_DIR
    (default OUTPUT_DIR/linear_eval) with linear_checkpoint.pth, linear_final.pth, results.json.
    """
    validate(cfg)
    device = du.resolve_device(cfg.MODEL.DEVICE)
    du.init_distributed(device, cfg.DDP.TIMEOUT_MIN)
    rank, world = du.get_rank(), du.get_world_size()
    out_dir = cfg.LINEAR.OUTPUT_DIR or os.path.join(cfg.OUTPUT_DIR, "linear_eval")
    autocast = autocast_context(device, resolve_precision(cfg.MODEL.PRECISION, device))
    if cfg.LINEAR.IMS_PER_BATCH % world:
        raise ValueError(f"LINEAR.IMS_PER_BATCH={cfg.LINEAR.IMS_PER_BATCH} must divide over {world} processes.")
    batch = cfg.LINEAR.IMS_PER_BATCH // world

    aug = build.linear_aug(cfg)  # LINEAR.AUG None: the method's published protocol
    if cfg.LINEAR.AUG is None:  # record the one used in the linear checkpoint's config
        cfg = cfg.clone()
        cfg.defrost()
        cfg.LINEAR.AUG = aug
        cfg.freeze()
    logger.info("Linear evaluation training crops: %s",
                "RandomResizedCrop + flip + RandAugment (RA)" if aug == "RA" else "RandomResizedCrop + flip (NULL)")
    train_tf = build.build_crop_transform(cfg, cfg.LINEAR.CROP_MIN, randaugment=aug == "RA")
    train_ds, sampler, train_loader = _loader(cfg, cfg.DATA.TRAIN_SPLIT, train_tf, rank, world, batch, True, 1)
    _, _, val_loader = _loader(cfg, cfg.DATA.VAL_SPLIT, build.build_eval_transform(cfg), rank, world, batch, False, 2)
    num_classes = cfg.LINEAR.NUM_CLASSES or len(train_ds.classes)
    bad_images = BadImageTracker(len(train_ds), cfg.DATA.MAX_BAD_IMAGES, cfg.DATA.MAX_BAD_FRACTION)

    encoder = load_encoder(cfg, checkpoint, cfg.LINEAR.ENCODER).to(device)
    with torch.no_grad():
        dim = _features(encoder, torch.zeros(1, 3, cfg.VIEWS.IMAGE_SIZE, cfg.VIEWS.IMAGE_SIZE, device=device),
                        autocast).shape[1]
    seed_all(cfg.SEED)  # the classifier's initialisation depends on the seed alone
    classifier = torch.nn.Linear(dim, num_classes).to(device)
    du.broadcast_module_state(classifier)
    iters_per_epoch = len(train_loader)
    if cfg.LINEAR.ITERS_PER_EPOCH > 0:
        iters_per_epoch = min(iters_per_epoch, cfg.LINEAR.ITERS_PER_EPOCH)
    base_lr = cfg.LINEAR.BASE_LR
    if cfg.LINEAR.SCALE_LR:
        base_lr = scaled_lr(base_lr, cfg.LINEAR.IMS_PER_BATCH, cfg.SOLVER.REFERENCE_BATCH)
    schedule = Schedule(base_lr=base_lr, epochs=cfg.LINEAR.EPOCHS, iters_per_epoch=iters_per_epoch,
                        kind="step", steps=tuple(cfg.LINEAR.STEPS), gamma=cfg.LINEAR.GAMMA)
    optimizer = build_optimizer(cfg.LINEAR, classifier.parameters(), base_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.multiplier)
    seed_all(derive_seed(cfg.SEED, rank, 0x11))

    history = []
    files = ckpt_io.CheckpointFiles(out_dir, final=FINAL_NAME, periodic=STATE_NAME, where="LINEAR.OUTPUT_DIR")
    checkpointer = ckpt_io.Checkpointer(
        files,
        payload=lambda rngs, it: {
            "format": LINEAR_FORMAT, "format_version": 1, "pretrained": os.path.abspath(checkpoint),
            "classifier": {k: v.cpu() for k, v in classifier.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": it // iters_per_epoch, "history": history, "rng": rngs, "config": cfg.dump(),
        },
        keep=lambda it, final: (lambda _: False) if final else None)  # the final file replaces the rolling one
    start_epoch = 0
    state_path = files.resolve_resume(resume)
    if state_path:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("format") != LINEAR_FORMAT:
            raise ValueError(f"{state_path} is not a linear-eval checkpoint (format {LINEAR_FORMAT!r}).")
        classifier.load_state_dict(state["classifier"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"])
        history.extend(state["history"])
        ckpt_io.restore_rng(state["rng"], lambda: None)
        logger.info("Resumed linear eval from %s after epoch %d.", state_path, start_epoch)

    model = classifier
    if du.is_initialized():
        model = DistributedDataParallel(classifier, device_ids=[device.index] if device.type == "cuda" else None)
    trainer = LinearTrainer(encoder=encoder, model=model, loader=train_loader, sampler=sampler,
                            optimizer=optimizer, scheduler=scheduler, autocast=autocast, device=device,
                            iters_per_epoch=iters_per_epoch, bad_images=bad_images, history=history)
    trainer.register_hooks([
        EpochEvalHook(classifier, val_loader, cfg.LINEAR.EPOCHS, du.backend_device(device)),
        PeriodicCheckpointHook(checkpointer, is_due=lambda done: done % iters_per_epoch == 0),
    ])
    trainer.train(start_epoch * iters_per_epoch, cfg.LINEAR.EPOCHS * iters_per_epoch)
    if not history:
        raise ValueError("LINEAR.EPOCHS is 0: nothing to evaluate.")
    final = dict(history[-1], best_top1=max(h["top1"] for h in history))
    if rank == 0:
        atomic_write_text(os.path.join(out_dir, "results.json"), json.dumps(final, indent=2) + "\n")
    return final
