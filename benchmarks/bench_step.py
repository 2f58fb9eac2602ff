"""Training throughput and peak memory of one InfoMin step: a PyContrast-style step vs ours.

One step = the engine's own `infomin.pretrain.step.TrainStep` on synthetic tensors: copy the batch
to the device (pinned host memory on CUDA), query encoder forward + backward on view1 and on the
jigsaw tiles, key (momentum) encoder forward under shuffle-BN on view2, contrastive loss against the
queue, queue update, optimizer and lr steps, momentum update. The method is InfoMin's preset
(configs/pretrain/infomin_R50_200ep.yaml) built by `build_method`, the optimizer by the engine's
`build_optimizer`, the model prepared by the engine's `prepare_model`. Variants, measured in the same
process one after the other:

* pycontrast: fp32, NCHW, for-loop SGD, no compile (what PyContrast's step amounts to without apex);
* ours: bf16 autocast (fp16 on GPUs without bf16), channels-last, fused SGD (foreach where torch has
  no fused kernel for the device);
* ours+compile: ours with torch.compile'd encoders (MODEL.COMPILE).

    python benchmarks/bench_step.py                          # R-50, 224 px, batch 128 on a GPU
    python benchmarks/bench_step.py --device cuda --json OUT/step.json
    python benchmarks/bench_step.py --device cpu --arch resnet18 --size 64 --batch 16
    python benchmarks/bench_step.py --tiny --device cpu --no-compile   # seconds: a smoke test

Exit status 1 when a variant fails (an exception, or a non-finite loss); the others still run.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import sys
import time
import traceback
import warnings

import torch

from infomin.pretrain import build
from infomin.pretrain.config import load_cfg
from infomin.pretrain.data import seed_all
from infomin.pretrain.engine import autocast_context, resolve_precision
from infomin.pretrain.optim import build_optimizer, fused_unsupported, optimizer_impl
from infomin.pretrain.schedule import build_schedule
from infomin.pretrain.step import TrainStep, compile_unavailable, prepare_model
from infomin.device import cpu_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET = os.path.join(REPO, "configs", "pretrain", "infomin_R50_200ep.yaml")
BASELINE = "pycontrast"
VARIANTS = {  # name -> (precision, channels-last, optimizer implementation, compile)
    BASELINE: ("fp32", False, "for_loop", False),
    "ours": ("auto", True, "fused", False),
    "ours+compile": ("auto", True, "fused", True),
}
TARGET = 2.0  # ours vs pycontrast on a GPU


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="images per step (default 128 on cuda, 16 on cpu)")
    p.add_argument("--iters", type=int, default=None, help="timed steps per variant (default 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; compile: >= 3)")
    p.add_argument("--arch", default=None, help="encoder (default resnet50)")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default 1)")
    p.add_argument("--size", type=int, default=None, help="view size in px (default 224; tiles 64/224 of it)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--tiny", action="store_true",
                   help="seconds-long CPU smoke mode: ResNet-18 x0.25, 64 px, batch 4, 2 iterations")
    p.add_argument("--no-compile", action="store_true", help="skip the ours+compile variant")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no CUDA device; use --device cpu")
    # 64 px as configs/pretrain/infomin_R18_tiny.yaml: at 32 px (9 px tiles) bf16 autocast on the CPU
    # (torch 2.14, oneDNN) gave NaN gradients in some runs of the same seeded step
    tiny = dict(arch="resnet18", width=0.25, size=64, batch=4, iters=2, warmup=1)
    full = dict(arch="resnet50", width=1.0, size=224, batch=128 if args.device == "cuda" else 16, iters=20, warmup=5)
    for key, value in (tiny if args.tiny else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("batch", "iters", "size"):
        if getattr(args, key) < 1:
            p.error(f"--{key} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads"


class PeakMemory:
    """Peak memory of a stretch of the run: CUDA allocator peak on a GPU; on the CPU the process's
    peak resident set (VmHWM, reset at the start where Linux allows it, else ru_maxrss since start)."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            self.kind = "torch.cuda.max_memory_allocated (tensors only, not the allocator's cache)"
        elif self._reset_rss():
            self.kind = "peak resident set size of the process (VmHWM, reset per variant; includes Python and torch)"
        else:
            self.kind = "peak resident set size of the process since it started (ru_maxrss; not per variant)"

    @staticmethod
    def _reset_rss() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def start(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._reset_rss()

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            with open("/proc/self/status") as f:
                kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        except (OSError, StopIteration):
            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kib / 1024


def synthetic_batch(args, device: torch.device) -> dict:
    """Normalised-looking images: two views and nine jigsaw tiles per image, as InfoMin's views yield."""
    g = torch.Generator().manual_seed(0)
    tile = max(8, round(64 * args.size / 224))
    batch = {
        "view1": torch.randn(args.batch, 3, args.size, args.size, generator=g),
        "view2": torch.randn(args.batch, 3, args.size, args.size, generator=g),
        "jigsaw": torch.randn(args.batch, 9, 3, tile, tile, generator=g),
        "index": torch.arange(args.batch),
    }
    if device.type == "cuda":  # as the loader does with DATA.PIN_MEMORY
        batch = {k: v.pin_memory() for k, v in batch.items()}
    return batch


def build_step(args, device: torch.device, precision: str, channels_last: bool, impl: str, compile: bool):
    opts = ["MODEL.DEVICE", device.type, "MODEL.ARCH", args.arch, "MODEL.WIDTH", args.width,
            "MODEL.PRECISION", precision, "MODEL.CHANNELS_LAST", channels_last, "MODEL.COMPILE", compile,
            "SOLVER.OPTIMIZER_IMPL", impl, "SOLVER.IMS_PER_BATCH", args.batch,
            "VIEWS.IMAGE_SIZE", args.size, "VIEWS.JIGSAW_TILE", max(8, round(64 * args.size / 224))]
    if args.tiny:
        opts += ["MODEL.QUEUE_SIZE", 256]
    cfg = load_cfg(PRESET, [str(o) for o in opts])
    seed_all(cfg.SEED)
    method = build.build_method(cfg, dataset_size=1_281_167, num_classes=1000)
    method = prepare_model(method, device, channels_last=channels_last, compile=compile)
    method.train()
    optimizer = build_optimizer(cfg.SOLVER, [p for p in method.parameters() if p.requires_grad], 0.03)
    schedule = build_schedule(cfg.SOLVER, cfg.SOLVER.IMS_PER_BATCH, 5000)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.multiplier)
    amp_dtype = resolve_precision(precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    step = TrainStep(model=method, method=method, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                     autocast=autocast_context(device, amp_dtype), device=device, channels_last=channels_last)
    return step, amp_dtype


def count_syncs(step, batch, device: torch.device) -> int | None:
    """Host-device synchronisations in one step (CUDA's sync debug mode); None on the CPU."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(dict(batch))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize(device)
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def run_variant(args, device, memory: PeakMemory, batch: dict, name: str) -> dict:
    precision, channels_last, impl, compile = VARIANTS[name]
    if device.type == "cpu" and precision == "auto":
        precision = "bf16"  # the variant is bf16 autocast; the engine's CPU default would be fp32
    if impl == "fused" and fused_unsupported("SGD", [torch.empty(1, device=device)]):
        impl = "foreach"
    warmup = max(args.warmup, 3) if compile else args.warmup
    memory.start()
    step, amp_dtype = build_step(args, device, precision, channels_last, impl, compile)
    for _ in range(warmup):
        step(dict(batch))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.iters):
        out = step(dict(batch))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    loss = float(out["loss"].detach())
    if not math.isfinite(loss):
        raise FloatingPointError(f"the loss is {loss} after {warmup + args.iters} steps")
    result = {
        "precision": "fp32" if amp_dtype is None else str(amp_dtype).replace("torch.", "") + " autocast",
        "layout": "channels_last" if channels_last else "NCHW",
        "optimizer": f"SGD ({optimizer_impl(step.optimizer)})",
        "compile": compile,
        "warmup": warmup,
        "iters": args.iters,
        "seconds": seconds,
        "img_per_s": args.batch * args.iters / seconds,
        # on a shared CPU the process's CPU time is the fairer clock (with --threads 1: per core)
        "cpu_seconds": cpu_seconds,
        "img_per_cpu_s": args.batch * args.iters / cpu_seconds,
        "peak_memory_mib": memory.peak_mib(),
        "loss": loss,
    }
    result["host_syncs_per_step"] = count_syncs(step, batch, device)
    del step, out
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the engine (and PyContrast) on a GPU
    memory = PeakMemory(device)
    batch = synthetic_batch(args, device)
    report = {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "arch": args.arch, "width": args.width, "image_size": args.size,
        "jigsaw_tile": tuple(batch["jigsaw"].shape[-2:])[0], "batch": args.batch,
        "memory_kind": memory.kind,
        "baseline": BASELINE,
        "target": f">= {TARGET}x {BASELINE} img/s for 'ours' on a GPU",
        "variants": {},
    }
    if device.type == "cpu":
        report["note"] = "CPU figures: they do not stand for a GPU (bf16 and channels-last pay off on tensor cores)"
    failed = False
    for name in VARIANTS:
        reason = None
        if VARIANTS[name][3]:
            reason = "--no-compile" if args.no_compile else compile_unavailable(device)
        if reason:
            report["variants"][name] = {"skipped": reason}
            continue
        try:
            report["variants"][name] = run_variant(args, device, memory, batch, name)
        except Exception as exc:  # noqa: BLE001 - report the others; exit non-zero at the end
            traceback.print_exc()
            report["variants"][name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
            failed = True
    base = report["variants"][BASELINE].get("img_per_s")
    base_cpu = report["variants"][BASELINE].get("img_per_cpu_s")
    for result in report["variants"].values():
        if "img_per_s" in result and base:
            result["ratio_vs_baseline"] = result["img_per_s"] / base
            result["cpu_time_ratio_vs_baseline"] = result["img_per_cpu_s"] / base_cpu
    ours = report["variants"]["ours"].get("ratio_vs_baseline")
    report["target_met"] = (ours is not None and ours >= TARGET) if device.type == "cuda" else None
    print_report(report)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 1 if failed else 0


def print_report(report: dict) -> None:
    print(f"{report['device']} | torch {report['torch']} | InfoMin {report['arch']} x{report['width']:g}, "
          f"{report['image_size']} px views + 9 tiles of {report['jigsaw_tile']} px, batch {report['batch']}")
    print(f"peak memory: {report['memory_kind']}")
    print(f"{'variant':<14} {'precision':<18} {'layout':<14} {'optimizer':<18} {'img/s':>9} {'peak MiB':>9} "
          f"{'vs ' + report['baseline']:>14} {'img/CPU-s':>10} {'vs':>6} {'syncs/step':>10}")
    for name, r in report["variants"].items():
        if "img_per_s" not in r:
            print(f"{name:<14} {'skipped: ' + r['skipped'] if 'skipped' in r else 'ERROR: ' + r['error']}")
            continue
        syncs = "-" if r["host_syncs_per_step"] is None else str(r["host_syncs_per_step"])
        print(f"{name:<14} {r['precision']:<18} {r['layout']:<14} {r['optimizer']:<18} {r['img_per_s']:>9.1f} "
              f"{r['peak_memory_mib']:>9.0f} {r.get('ratio_vs_baseline', float('nan')):>13.2f}x "
              f"{r['img_per_cpu_s']:>10.1f} {r.get('cpu_time_ratio_vs_baseline', float('nan')):>5.2f}x {syncs:>10}")
    if report["device_type"] == "cuda":
        print(f"target {report['target']}: {'met' if report['target_met'] else 'NOT met'}")
    else:
        print(f"{report['note']}; the target ({report['target']}) cannot be judged here.")


if __name__ == "__main__":
    sys.exit(main())
