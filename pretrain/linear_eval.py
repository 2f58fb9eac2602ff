"""`infomin-linear-eval`: the reference linear protocol on a frozen pretrained encoder.

Frozen encoder in eval mode (BN running stats), pooled features, one linear layer trained by
SGD lr 30 (momentum 0.9, no weight decay) for 60 epochs with x0.2 decays after epochs 30, 40
and 50; training crops RandomResizedCrop(0.2-1) + flip, optionally RandAugment. Distributed like
pretraining (only the classifier is wrapped in DDP; every rank evaluates its share of val and
the counts are summed), resumable per epoch, reporting top-1/top-5 in percent.

    torchrun --nproc_per_node 8 tools/linear_eval.py --checkpoint out/model_final.pth DATA.ROOT /imagenet
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from . import build, checkpoint as ckpt_io, distributed as du
from .config import cfg_from_yaml_string, load_cfg, validate
from .data import BadImageTracker, ResumableSampler, RobustImageFolder, WorkerSeeder, build_loader, derive_seed, seed_all
from .engine import resolve_precision
from .schedule import Schedule, scaled_lr

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
    prefix = {"online": "encoder.", "ema": "encoder_ema."}[which]
    weights = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    if not weights:
        raise ValueError(f"{checkpoint} has no {prefix}* weights (LINEAR.ENCODER {which}); "
                         "bank and supervised methods have no EMA encoder, use LINEAR.ENCODER online.")
    method = build.build_method(cfg, dataset_size=1, num_classes=2)
    encoder = method.encoder
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
    amp_dtype = resolve_precision(cfg.MODEL.PRECISION, device)
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    if cfg.LINEAR.IMS_PER_BATCH % world:
        raise ValueError(f"LINEAR.IMS_PER_BATCH={cfg.LINEAR.IMS_PER_BATCH} must divide over {world} processes.")
    batch = cfg.LINEAR.IMS_PER_BATCH // world

    train_tf = build.build_crop_transform(cfg, cfg.LINEAR.CROP_MIN, randaugment=cfg.LINEAR.AUG == "RA")
    train_ds, sampler, train_loader = _loader(cfg, cfg.DATA.TRAIN_SPLIT, train_tf, rank, world, batch, True, 1)
    _, _, val_loader = _loader(cfg, cfg.DATA.VAL_SPLIT, build.build_eval_transform(cfg), rank, world, batch, False, 2)
    num_classes = cfg.LINEAR.NUM_CLASSES or len(train_ds.classes)
    bad_images = BadImageTracker(len(train_ds), cfg.DATA.MAX_BAD_IMAGES, cfg.DATA.MAX_BAD_FRACTION)

    seed_all(cfg.SEED)
    encoder = load_encoder(cfg, checkpoint, cfg.LINEAR.ENCODER).to(device)
    with torch.no_grad():
        dim = _features(encoder, torch.zeros(1, 3, cfg.VIEWS.IMAGE_SIZE, cfg.VIEWS.IMAGE_SIZE, device=device),
                        autocast).shape[1]
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
    optimizer = torch.optim.SGD(classifier.parameters(), lr=base_lr, momentum=cfg.LINEAR.MOMENTUM,
                                weight_decay=cfg.LINEAR.WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.multiplier)
    seed_all(derive_seed(cfg.SEED, rank, 0x11))

    start_epoch, history = 0, []
    state_path = _resolve(resume, out_dir)
    if state_path:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("format") != LINEAR_FORMAT:
            raise ValueError(f"{state_path} is not a linear-eval checkpoint (format {LINEAR_FORMAT!r}).")
        classifier.load_state_dict(state["classifier"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        ranks = state["rng"]
        if len(ranks) == world:
            ckpt_io.set_rng_state(ranks[rank])
        logger.info("Resumed linear eval from %s after epoch %d.", state_path, start_epoch)

    model = classifier
    if du.is_initialized():
        model = DistributedDataParallel(classifier, device_ids=[device.index] if device.type == "cuda" else None)
    for epoch in range(start_epoch, cfg.LINEAR.EPOCHS):
        sampler.set_epoch(epoch)
        train_loader.dataset.set_epoch(epoch)
        for it, data in enumerate(train_loader):
            if it >= iters_per_epoch:
                break
            bad_images.update(data.pop("bad", ()))
            feats = _features(encoder, data["image"].to(device, non_blocking=True), autocast)
            loss = F.cross_entropy(model(feats), data["label"].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        comm = du.backend_device(device)
        bad_images.check(du.all_reduce_sum(torch.tensor([len(bad_images.paths)], device=comm)).item())
        result = evaluate(encoder, classifier, val_loader, device, autocast)
        result.update(epoch=epoch + 1, loss=loss.item())
        history.append(result)
        logger.info("linear eval epoch %d/%d: top-1 %.2f top-5 %.2f (loss %.4f)", epoch + 1,
                    cfg.LINEAR.EPOCHS, result["top1"], result["top5"], result["loss"])
        rngs = du.all_gather_object(ckpt_io.rng_state())
        if rank == 0:
            name = FINAL_NAME if epoch + 1 == cfg.LINEAR.EPOCHS else STATE_NAME
            ckpt_io.atomic_torch_save({
                "format": LINEAR_FORMAT, "format_version": 1, "pretrained": os.path.abspath(checkpoint),
                "classifier": {k: v.cpu() for k, v in classifier.state_dict().items()},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1, "history": history, "rng": rngs, "config": cfg.dump(),
            }, os.path.join(out_dir, name))
        du.barrier()
    if not history:
        raise ValueError("LINEAR.EPOCHS is 0: nothing to evaluate.")
    final = dict(history[-1], best_top1=max(h["top1"] for h in history))
    if rank == 0:
        ckpt_io.atomic_write_text(json.dumps(final, indent=2) + "\n", os.path.join(out_dir, "results.json"))
        stale = os.path.join(out_dir, STATE_NAME)
        if os.path.exists(stale) and os.path.exists(os.path.join(out_dir, FINAL_NAME)):
            os.remove(stale)
    return final


def _resolve(resume, out_dir):
    if resume == "auto":
        for name in (FINAL_NAME, STATE_NAME):
            if os.path.isfile(os.path.join(out_dir, name)):
                return os.path.join(out_dir, name)
        return None
    if resume and not os.path.isfile(resume):
        raise FileNotFoundError(f"--resume {resume!r}: no such linear-eval checkpoint (or use `auto`).")
    return resume


def main(argv=None) -> int:
    from .cli import merge_output_dir, parse_args, setup_logging

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a pretraining checkpoint (model_final.pth)")
    p.add_argument("--config-file", default="",
                   help="config to use instead of the one stored in the checkpoint")
    p.add_argument("--resume", default=None, metavar="PATH|auto")
    p.add_argument("--output-dir", default=None, help="same as the LINEAR.OUTPUT_DIR option")
    p.add_argument("opts", nargs="*", help="config overrides: KEY VALUE ...")
    args = parse_args(p, argv)
    opts = merge_output_dir(args.opts, args.output_dir, key="LINEAR.OUTPUT_DIR")
    try:
        if args.config_file:
            cfg = load_cfg(args.config_file, opts)
        else:
            cfg = cfg_from_yaml_string(ckpt_io.load_checkpoint(args.checkpoint)["config"])
            cfg.merge_from_list(opts)
            validate(cfg)
            cfg.freeze()
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"Config error: {e.args[0] if e.args else e}") from None
    setup_logging(cfg.LINEAR.OUTPUT_DIR or os.path.join(cfg.OUTPUT_DIR, "linear_eval"), "linear_log.txt")
    try:
        result = run_linear_eval(cfg, args.checkpoint, resume=args.resume)
    finally:
        if du.is_initialized():
            du.dist.destroy_process_group()
    if du.get_rank() == 0:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
