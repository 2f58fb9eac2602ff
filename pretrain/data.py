"""Datasets and loaders: ImageFolder/ImageNet trees, bad-image accounting, resumable sampling.

Randomness is a pure function of (seed, epoch, sample index): every sample reseeds python,
numpy and torch before its augmentation, so the views do not depend on the number of workers,
on which rank reads the sample, or on whether the run was resumed mid-epoch. Workers are also
seeded from (seed, rank, worker id, epoch) for anything outside a sample.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Sampler
from torchvision.datasets import ImageFolder

from infomin.workers import cap_workers

logger = logging.getLogger(__name__)


class BadImageError(RuntimeError):
    """Too many unreadable images: the data, not the model, needs attention."""


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def seed_all(seed: int) -> None:
    """Seed python, numpy and the CPU torch generator (CUDA generators are left alone)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.default_generator.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with all CPU RNGs seeded; in the main process (num_workers=0) restore them
    afterwards so data loading does not disturb the training loop's random stream."""
    in_worker = torch.utils.data.get_worker_info() is not None
    if not in_worker:
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    seed_all(seed)
    try:
        yield
    finally:
        if not in_worker:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def check_split(root: str, split: str) -> str:
    """The split folder, or a clear error saying which layout is expected."""
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"DATA.ROOT {root!r} does not exist. Point DATA.ROOT at a folder holding "
            "train/<class>/<image> and val/<class>/<image> (the ImageNet layout)."
        )
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"DATA.ROOT {root!r} has no {split!r} folder. Expected {folder}/<class>/<image> "
            "(ImageNet layout; move ImageNet val images into class subfolders)."
        )
    return folder


def load_rgb(path: str) -> Image.Image:
    """Fully decode an image (a truncated JPEG raises here, not later inside a transform)."""
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


class RobustImageFolder(ImageFolder):
    """ImageFolder returning dicts; an unreadable image is replaced by the next readable one and
    its path is reported in the sample's "bad" field, so the engine can count and name it.

    `transform(PIL) -> dict` (multi-view) or `-> Tensor` (stored under "image").
    """

    max_substitutes = 16

    def __init__(self, root: str, split: str, transform: Callable, seed: int = 0):
        folder = check_split(root, split)
        try:
            super().__init__(folder, loader=load_rgb)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"No images found under {folder}: expected {folder}/<class>/<image> with "
                f"extensions {', '.join(sorted(self._exts()))}. ({e})"
            ) from None
        self.view_transform = transform
        self.seed = seed
        self.epoch = 0

    @staticmethod
    def _exts():
        from torchvision.datasets.folder import IMG_EXTENSIONS

        return IMG_EXTENSIONS

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def collate_fn(self):
        """The view transform's batch collation (DATA.LOADER gpu ships bytes), else None (default)."""
        return getattr(self.view_transform, "collate_fn", None)

    def path_of(self, index: int, attempt: int = 0) -> str:
        """The file read for sample ``index`` after ``attempt`` substitutions."""
        return self.samples[(index + attempt) % len(self.samples)][0]

    def load(self, index: int, first_attempt: int = 0) -> tuple[dict, list[str]]:
        """Sample ``index`` from its ``first_attempt``-th file on (each unreadable one replaced by
        the next, always with the sample's own seed); returns the sample and the skipped files.
        DATA.LOADER gpu also calls it for a file that only the device found undecodable."""
        bad = []
        for attempt in range(first_attempt, self.max_substitutes):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                # opened lazily: the views decode (at a reduced JPEG scale where they can) themselves;
                # a truncated file raises OSError during that decode, which is caught here
                with Image.open(path) as img, seeded(derive_seed(self.seed, self.epoch, index)):
                    out = self.view_transform(img)
                break
            except (OSError, SyntaxError, Image.DecompressionBombError) as e:
                bad.append(f"{path} ({type(e).__name__}: {e})")
        else:
            raise BadImageError(
                f"{self.max_substitutes} consecutive unreadable images starting at {self.samples[index][0]}:\n"
                + "\n".join(bad)
            )
        sample = dict(out) if isinstance(out, dict) else {"image": out}
        sample["label"] = label
        sample["index"] = index
        if "encoded" in sample:  # DATA.LOADER gpu: which file was read, for a device-side substitute
            sample["attempt"] = attempt
        return sample, bad

    def __getitem__(self, index: int) -> dict:
        sample, bad = self.load(index)
        sample["bad"] = "\n".join(bad)
        return sample


class BadImageTracker:
    """Counts distinct unreadable images and warns with each path; `check` stops the run past
    the limits. A negative limit disables it. The fraction is relative to the dataset size.
    Under torchrun, pass `check` the count summed over ranks so that all ranks stop together.
    """

    def __init__(self, dataset_size: int, max_images: int, max_fraction: float):
        self.dataset_size = dataset_size
        self.max_images = max_images
        self.max_fraction = max_fraction
        self.paths: set[str] = set()

    def update(self, bad_field) -> None:
        for entry in bad_field:
            for line in filter(None, str(entry).split("\n")):
                if line not in self.paths:
                    self.paths.add(line)
                    logger.warning("Skipped unreadable image %s", line)

    def check(self, total: int | None = None) -> None:
        """`total`: the count over all ranks (default: this process's)."""
        n = len(self.paths) if total is None else int(total)
        over_count = self.max_images >= 0 and n > self.max_images
        over_frac = self.max_fraction >= 0 and n > self.max_fraction * self.dataset_size
        if over_count or over_frac:
            raise BadImageError(
                f"{n} unreadable images out of {self.dataset_size} (limits: DATA.MAX_BAD_IMAGES="
                f"{self.max_images}, DATA.MAX_BAD_FRACTION={self.max_fraction}). Fix or remove "
                "these files, or raise the limits. Seen by this process:\n" + "\n".join(sorted(self.paths))
            )


class ResumableSampler(Sampler[int]):
    """DistributedSampler-like: a per-epoch permutation from (seed, epoch), split over ranks by
    striding, that can start part-way through the epoch (`set_epoch(epoch, start=...)`) so a
    resumed run sees exactly the batches the interrupted one had not seen yet.
    """

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, pad: bool = True):
        self.size, self.num_replicas, self.rank = size, num_replicas, rank
        self.shuffle, self.seed, self.pad = shuffle, seed, pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """`start`: number of this rank's samples already consumed in this epoch."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, 0x5A))
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.pad:
            total = -(-self.size // self.num_replicas) * self.num_replicas
            order += order[: total - len(order)]
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return max(len(self.indices()) - self.start, 0)


class WorkerSeeder:
    """worker_init_fn: seeds torch, numpy and python in each worker from (seed, rank, id, epoch)."""

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank, self.epoch = seed, rank, 0

    def __call__(self, worker_id: int) -> None:
        seed_all(derive_seed(self.seed, self.rank, worker_id, self.epoch, 0xA5))
        # Ctrl-C reaches the whole process group: the main process checkpoints and stops the
        # workers itself (StopHook); a worker dying of it would end the run with a loader error.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # torch caps its own threads in workers, OpenCV (the views' colour ops) does not: without
        # this every worker would start one OpenCV thread per core and oversubscribe the CPUs.
        try:
            import cv2
        except ImportError:
            return
        cv2.setNumThreads(1)


def build_loader(dataset, batch_size: int, sampler: ResumableSampler, num_workers: int,
                 seeder: WorkerSeeder, drop_last: bool, pin_memory: bool = False) -> DataLoader:
    """A loader that never draws from the global torch RNG (its own generator), so creating it
    mid-run does not perturb the training randomness restored from a checkpoint."""
    return DataLoader(
        dataset,
        collate_fn=getattr(dataset, "collate_fn", None),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cap_workers(num_workers),
        worker_init_fn=seeder,
        generator=torch.Generator().manual_seed(derive_seed(seeder.seed, seeder.rank, 0x77)),
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
