"""Estimate the information two views share, I_NCE = log K - L_NCE (Tian et al. 2020, Sec. 3).

A critic (encoder + head per view, L2-normalised embeddings, dot product over a temperature) is
trained for a fixed budget on pairs from a view-pair generator, then evaluated on *held-out* pairs
with fresh view samples. I_NCE is a lower bound on I(v1; v2) that can never exceed log K, where K
is the number of candidates per query (the batch size for in-batch negatives, queue size + 1 with a
queue), so the result says which K it used and warns when it comes within 10% of that ceiling.
The Donsker-Varadhan bound (what MINE optimises) is available as ``bound="dv"`` / ``"mine"``.

A *pair source* is any iterable of batches, each either ``(v1, v2)``, a dict with ``"view1"`` and
``"view2"`` (what ``infomin.views.build_multiview_transform`` yields through a DataLoader), or a
``(dict, labels)`` tuple (an ImageFolder whose transform returns that dict). Training re-iterates
the source when it runs out, so a DataLoader gives fresh augmentations every pass.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BOUNDS", "MIBudget", "MIEstimate", "MICeilingWarning", "Critic", "build_encoder",
    "image_critic", "mlp_critic", "nce_bound", "dv_bound", "train_critic", "evaluate_critic",
    "estimate_mi", "as_pair", "image_pair_loaders",
]

BOUNDS = ("nce", "dv", "mine")
CEILING_FRACTION = 0.9


class MICeilingWarning(UserWarning):
    """I_NCE came within 10% of log K: the bound is saturated and hides differences between views."""


@dataclasses.dataclass(frozen=True)
class MIBudget:
    """The critic's training budget. Keep it identical for every policy you compare."""

    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-5
    eval_batches: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.eval_batches < 1:
            raise ValueError(f"MIBudget needs steps >= 1 and eval_batches >= 1, got {self}")


@dataclasses.dataclass
class MIEstimate:
    """A held-out estimate in nats, with everything needed to compare it to another one."""

    bound: str
    value: float
    std: float
    per_batch: list[float]
    k: int | None
    k_kind: str
    temperature: float
    budget: MIBudget
    train_losses: list[float]

    @property
    def log_k(self) -> float | None:
        return math.log(self.k) if self.k else None

    @property
    def near_ceiling(self) -> bool:
        return self.log_k is not None and self.value >= CEILING_FRACTION * self.log_k

    def summary(self) -> str:
        name = {"nce": "I_NCE", "dv": "I_DV", "mine": "I_DV (MINE)"}[self.bound]
        text = (f"{name} = {self.value:.3f} ± {self.std:.3f} nats "
                f"(std over {len(self.per_batch)} held-out batches)")
        if self.k:
            text += f"; K = {self.k} ({self.k_kind}), ceiling log K = {self.log_k:.3f}"
        return text + f"; tau = {self.temperature:g}, critic trained {self.budget.steps} steps"

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.update(log_k=self.log_k, near_ceiling=self.near_ceiling)
        return out


# --------------------------------------------------------------------------------------- critic
class _ConvNet(nn.Module):
    """A 4-stage conv-BN-ReLU encoder for tiny images; cheaper than any ResNet."""

    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        layers, c = [], in_channels
        for i, out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            layers += [nn.Conv2d(c, out, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = c

    def forward(self, x):
        return self.features(x)


def build_encoder(arch: str = "resnet18", in_channels: int = 3, width: float = 1) -> tuple[nn.Module, int]:
    """(encoder, feature dim): ``infomin.models`` ResNet (``width`` scales every stage) or the
    ``"convnet"`` toy encoder (base width ``int(32 * width)``)."""
    if arch == "convnet":
        net = _ConvNet(in_channels, max(int(32 * width), 1))
        return net, net.out_dim
    from infomin.models import ARCHS, build_encoder as build_resnet, feature_dim

    if arch not in ARCHS:
        raise ValueError(f"unknown critic arch {arch!r}: use 'convnet' or one of {sorted(ARCHS)}")
    return build_resnet(arch, width=width, in_channels=in_channels), feature_dim(arch, width)


class Critic(nn.Module):
    """score(v1, v2) = <z1, z2> / tau with z = normalize(head(encoder(v))).

    Without ``encoder2`` both views share one encoder and head (the augmentation studies); with it,
    each view has its own (the colour-split / CMC studies, where the views differ in channels).
    """

    def __init__(self, encoder1: nn.Module, feat_dim1: int, encoder2: nn.Module | None = None,
                 feat_dim2: int | None = None, *, embed_dim: int = 128, head: str = "mlp",
                 temperature: float = 0.1):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        from infomin.models import build_head  # projection + L2 normalisation

        self.temperature = float(temperature)
        self.encoder1, self.head1 = encoder1, build_head(head, feat_dim1, embed_dim)
        self.shared = encoder2 is None
        if not self.shared:
            self.encoder2 = encoder2
            self.head2 = build_head(head, feat_dim2 or feat_dim1, embed_dim)

    def features(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs before the head (what a linear probe reads)."""
        if self.shared:
            return self.encoder1(v1), self.encoder1(v2)
        return self.encoder1(v1), self.encoder2(v2)

    def embed(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1, h2 = self.features(v1, v2)
        return self.head1(h1), (self.head1 if self.shared else self.head2)(h2)

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """Score matrix [N, N]: row i is view1 of sample i against view2 of every sample."""
        z1, z2 = self.embed(v1, v2)
        return z1 @ z2.t() / self.temperature


def image_critic(in_channels: int | Sequence[int] = 3, *, arch: str = "resnet18", width: float = 1,
                 shared: bool | None = None, embed_dim: int = 128, head: str = "mlp",
                 temperature: float = 0.1) -> Critic:
    """Critic for image views; ``in_channels=(1, 2)`` gives one encoder per view (CMC style)."""
    c1, c2 = (in_channels, in_channels) if isinstance(in_channels, int) else tuple(in_channels)
    shared = (c1 == c2) if shared is None else shared
    if shared and c1 != c2:
        raise ValueError(f"a shared encoder needs views with equal channels, got {c1} and {c2}")
    enc1, d1 = build_encoder(arch, c1, width)
    enc2, d2 = (None, None) if shared else build_encoder(arch, c2, width)
    return Critic(enc1, d1, enc2, d2, embed_dim=embed_dim, head=head, temperature=temperature)


def mlp_critic(dim1: int, dim2: int | None = None, *, hidden: int = 128, embed_dim: int = 32,
               temperature: float = 0.1) -> Critic:
    """Critic for vector views (e.g. the Gaussian sanity check): a 2-layer MLP per view."""
    def mlp(d):
        return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                             nn.ReLU(inplace=True))
    return Critic(mlp(dim1), hidden, mlp(dim2 or dim1), hidden, embed_dim=embed_dim, head="linear",
                  temperature=temperature)


# --------------------------------------------------------------------------------------- bounds
def nce_bound(scores: torch.Tensor, queue_scores: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """(I_NCE, K) for one batch; positives are on the diagonal of ``scores``.

    In-batch: each view1 is scored against the N view2s (K = N), and symmetrically, and the two
    directions are averaged (each is a valid bound with the same K). With ``queue_scores`` [N, Q]
    (view1 against Q stored view2 embeddings of other images) the candidates are the positive plus
    the queue, K = Q + 1, as in MoCo.
    """
    n = scores.shape[0]
    target = torch.arange(n, device=scores.device)
    if queue_scores is None:
        loss = 0.5 * (F.cross_entropy(scores, target) + F.cross_entropy(scores.t(), target))
        k = n
    else:
        from infomin.losses import info_nce_from_logits  # MoCo layout: positive in column 0

        loss = info_nce_from_logits(torch.cat([scores.diagonal()[:, None], queue_scores], dim=1))
        k = queue_scores.shape[1] + 1
    return math.log(k) - loss, k


def dv_bound(scores: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan bound: E_joint[T] - log E_marginals[exp T], off-diagonal pairs as marginals."""
    n = scores.shape[0]
    off = scores.masked_select(~torch.eye(n, dtype=torch.bool, device=scores.device))
    return scores.diagonal().mean() - (torch.logsumexp(off, 0) - math.log(off.numel()))


class _MineObjective:
    """MINE's bias-corrected gradient: the log-partition term uses a moving average (Belghazi 2018).

    Scores are bounded by ``shift`` = 1/tau, so exp(T - shift) <= 1 never overflows; the constant
    factor exp(-shift) cancels between E[e^T] and its moving average.
    """

    def __init__(self, shift: float, rate: float = 0.01):
        self.shift, self.rate, self.avg = shift, rate, None

    def loss(self, scores: torch.Tensor) -> torch.Tensor:
        n = scores.shape[0]
        off = scores.masked_select(~torch.eye(n, dtype=torch.bool, device=scores.device))
        mean_exp = torch.exp(off - self.shift).mean()
        self.avg = mean_exp.detach() if self.avg is None else (1 - self.rate) * self.avg + self.rate * mean_exp.detach()
        # gradient of log E[e^T] estimated as grad E[e^T] / moving average of E[e^T]
        return -(scores.diagonal().mean() - mean_exp / self.avg)


# ----------------------------------------------------------------------------------- batches
def as_pair(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Take (v1, v2) out of any batch shape a pair source may yield (see module docstring)."""
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], dict):
        batch = batch[0]
    if isinstance(batch, dict):
        if "view1" not in batch or "view2" not in batch:
            raise ValueError(f"a view batch dict needs keys 'view1' and 'view2', got {sorted(batch)}")
        return batch["view1"], batch["view2"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and all(torch.is_tensor(b) for b in batch):
        return batch[0], batch[1]
    raise ValueError("a pair source must yield (v1, v2) tensors, a dict with 'view1'/'view2', or "
                     f"(dict, labels); got {type(batch).__name__}")


def _cycle(source: Iterable):
    while True:
        empty = True
        for batch in source:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training pair source yielded no batches")


class _Queue:
    """FIFO of view2 embeddings from earlier batches (other images), the negatives of a queue bound."""

    def __init__(self, size: int):
        self.size, self.items = size, None

    @property
    def full(self) -> bool:
        return self.items is not None and self.items.shape[0] >= self.size

    def push(self, z2: torch.Tensor):
        z2 = z2.detach()
        self.items = z2 if self.items is None else torch.cat([z2, self.items])[: self.size]


def _batch_value(critic, v1, v2, bound, queue):
    if bound != "nce":
        return dv_bound(critic(v1, v2)), None
    if queue is None:
        return nce_bound(critic(v1, v2))
    z1, z2 = critic.embed(v1, v2)
    scores = z1 @ z2.t() / critic.temperature
    value, k = (nce_bound(scores, z1 @ queue.items.t() / critic.temperature) if queue.full
                else (None, None))
    queue.push(z2)
    return value, k


def _check_bound(bound: str, queue_size: int):
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
    if queue_size < 0 or (queue_size and bound != "nce"):
        raise ValueError("queue_size > 0 is only meaningful for bound='nce' (and must be >= 0), got "
                         f"queue_size={queue_size}, bound={bound!r}")


def train_critic(critic: Critic, train_pairs: Iterable, *, bound: str = "nce",
                 budget: MIBudget = MIBudget(), queue_size: int = 0, device="cpu",
                 log: Callable[[int, float], None] | None = None) -> list[float]:
    """Maximise the bound for exactly ``budget.steps`` steps with Adam; returns the training values."""
    _check_bound(bound, queue_size)
    torch.manual_seed(budget.seed)
    critic.to(device).train()
    opt = torch.optim.Adam(critic.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    mine = _MineObjective(shift=1.0 / critic.temperature) if bound == "mine" else None
    queue = _Queue(queue_size) if queue_size else None
    values, batches = [], _cycle(train_pairs)
    while len(values) < budget.steps:
        v1, v2 = (t.to(device).float() for t in as_pair(next(batches)))
        if mine is not None:
            scores = critic(v1, v2)
            loss, value = mine.loss(scores), dv_bound(scores.detach())
        else:
            value, _ = _batch_value(critic, v1, v2, bound, queue)
            if value is None:  # still filling the queue
                continue
            loss = -value
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        values.append(float(value.detach()))
        if log is not None:
            log(len(values), values[-1])
    return values


@torch.no_grad()
def evaluate_critic(critic: Critic, eval_pairs: Iterable, *, bound: str = "nce", batches: int = 10,
                    queue_size: int = 0, device="cpu") -> tuple[list[float], int | None]:
    """Per-batch bound values on held-out pairs (eval-mode critic) and the K they used.

    Batches whose size differs from the first are skipped, so every value has the same K. A held-out
    source with fewer than ``batches`` batches is passed over again (fresh views from a DataLoader).
    """
    _check_bound(bound, queue_size)
    critic.to(device).eval()
    queue = _Queue(queue_size) if queue_size else None
    values, k, size = [], None, None
    passes = (batch for _ in range(batches) for batch in eval_pairs)  # a small held-out set is re-viewed
    for batch in passes:
        v1, v2 = (t.to(device).float() for t in as_pair(batch))
        size = size or v1.shape[0]
        if v1.shape[0] != size:
            continue
        value, k_batch = _batch_value(critic, v1, v2, "nce" if bound == "nce" else "dv", queue)
        if value is None:
            continue
        values.append(float(value))
        k = k_batch
        if len(values) >= batches:
            break
    if not values:
        need = f" (a queue of {queue_size} needs more held-out batches first)" if queue_size else ""
        raise ValueError(f"no held-out batch could be evaluated{need}: give more held-out images")
    return values, k


def estimate_mi(train_pairs: Iterable, eval_pairs: Iterable, critic: Critic, *, bound: str = "nce",
                budget: MIBudget = MIBudget(), queue_size: int = 0, device="cpu",
                warn: bool = True, log: Callable[[int, float], None] | None = None) -> MIEstimate:
    """Train ``critic`` on ``train_pairs`` for the budget, then estimate on held-out ``eval_pairs``.

    For a fair comparison of view policies give every policy a freshly built critic of the same
    architecture, the same budget, batch size and K. Warns (MICeilingWarning) when I_NCE >= 0.9 log K.
    ``log(step, value)`` is called after every training step (e.g. a progress bar).
    """
    losses = train_critic(critic, train_pairs, bound=bound, budget=budget, queue_size=queue_size,
                          device=device, log=log)
    values, k = evaluate_critic(critic, eval_pairs, bound=bound, batches=budget.eval_batches,
                                queue_size=queue_size, device=device)
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
    est = MIEstimate(bound=bound, value=mean, std=std, per_batch=values,
                     k=k if bound == "nce" else None,
                     k_kind=("queue" if queue_size else "in-batch") if bound == "nce" else "none",
                     temperature=critic.temperature, budget=budget, train_losses=losses)
    if warn and est.near_ceiling:
        warnings.warn(f"I_NCE = {est.value:.3f} is within 10% of its ceiling log K = {est.log_k:.3f} "
                      f"(K = {est.k}): the bound is saturated and cannot rank these views; increase K "
                      "(a larger batch or queue_size)", MICeilingWarning, stacklevel=2)
    return est


# ------------------------------------------------------------------------------ image sources
class _Pairs(torch.utils.data.Dataset):
    """Image dataset -> view pairs; module-level so spawn-started DataLoader workers can pickle it."""

    def __init__(self, base, pair_transform):
        self.base, self.pair_transform = base, pair_transform

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.pair_transform(self.base[i][0])


def image_pair_loaders(dataset, pair_transform: Callable, *, batch_size: int = 64,
                       heldout_fraction: float = 0.2, num_workers: int = 0, seed: int = 0,
                       heldout_dataset=None):
    """(train_loader, heldout_loader) of view pairs from a torchvision-style image dataset.

    ``dataset[i]`` must return ``(PIL image, label)`` (ImageFolder, STL10); ``pair_transform`` maps
    a PIL image to a pair (e.g. ``infomin.views.build_multiview_transform(...)``). The held-out
    images are a seeded ``heldout_fraction`` of ``dataset`` unless ``heldout_dataset`` is given;
    they are never trained on, and every pass draws fresh views. Incomplete batches are dropped so
    that K is the same for every batch.
    """
    from torch.utils.data import DataLoader, Subset

    if heldout_dataset is None:
        if not 0 < heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
        cut = int(round(len(dataset) * heldout_fraction))
        train_set, heldout_dataset = Subset(dataset, order[cut:]), Subset(dataset, order[:cut])
    else:
        train_set = dataset
    for name, part in (("training", train_set), ("held-out", heldout_dataset)):
        if len(part) < batch_size:
            raise ValueError(f"the {name} split has {len(part)} images, fewer than batch_size="
                             f"{batch_size}: use more images or a smaller batch")
    gen = torch.Generator().manual_seed(seed)
    make = lambda part, shuffle: DataLoader(_Pairs(part, pair_transform), batch_size=batch_size, shuffle=shuffle,
                                            drop_last=True, num_workers=num_workers, generator=gen)
    return make(train_set, True), make(heldout_dataset, False)
