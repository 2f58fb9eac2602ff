"""Learn a colour-channel view split with InfoMin's adversarial objective (Tian et al. 2020, Sec. 4.1).

1. View learning. g = ``infomin.viewgen.FlowViewGenerator`` maps an image to X^ = g(X); the views
   are X^_1 and X^_{2:3}. A critic (one encoder per view) maximises I_NCE between them; g minimises
   it (``unsupervised``). ``semi`` adds the cross-entropy of a classifier on each view on the
   labelled subset, ``supervised`` keeps only that cross-entropy.
2. Evaluation. g is frozen; a *fresh* two-stream contrastive encoder is trained on its views (no
   classification loss), I_NCE is measured on held-out images, and a linear probe on the
   concatenated features of both streams gives top-1 accuracy on the test split. The raw colour
   space split (g = identity) gets exactly the same treatment, so the two are comparable.

Data: an STL-10 root holding the torchvision binary layout ``stl10_binary/`` (unlabeled + train
for learning, train labels for the probe, test for accuracy), or an ImageFolder root with
``train/`` and ``val/`` (or ``test/``) of which ``DATA.LABELED_FRACTION`` of train is labelled.
Without ``DATA.ROOT`` the built-in data set is generated under the output folder.

    infomin-learn-views --config-file views/stl10_semi_vp_RGB.yaml OUTPUT_DIR out/stl10_semi
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from infomin import config, mi
from infomin.atomic import atomic_torch_save, atomic_write_path, atomic_write_text
from infomin.config import CfgNode
from infomin.datasets import builtin_imagefolder
from infomin.device import resolve_device
from infomin.viewgen import FlowViewGenerator
from infomin.workers import cap_workers

__all__ = ["get_cfg", "load_cfg", "ViewData", "build_data", "Standardize", "learn_views",
           "evaluate_views", "linear_probe", "save_generator", "load_generator", "run"]

MODES = ("unsupervised", "semi", "supervised")


def get_cfg() -> CfgNode:
    """Defaults: a CPU-sized run on the built-in data; configs/views/ hold the STL-10 protocol."""
    c = CfgNode()
    c.DATA = CfgNode()
    c.DATA.ROOT = ""              # STL-10 root (with stl10_binary/) or ImageFolder root; "" = built-in
    c.DATA.FORMAT = "auto"        # auto | stl10 | imagefolder
    c.DATA.LABELED_FRACTION = 0.2  # ImageFolder only: labelled share of train/
    c.DATA.IMAGE_SIZE = 32
    c.DATA.CROP_MIN = 0.2
    c.DATA.COLOR_SPACE = "RGB"    # space g starts from (infomin.views.colorspace)
    c.DATA.NUM_WORKERS = 2
    c.DATA.STAT_IMAGES = 256      # images used to standardise each channel of the colour space
    c.GENERATOR = CfgNode()
    c.GENERATOR.KIND = "vp"       # vp (additive coupling) | nvp (affine coupling)
    c.GENERATOR.BLOCKS = 4
    c.GENERATOR.HIDDEN = 32
    c.GENERATOR.LAYERS = 3
    c.LEARN = CfgNode()
    c.LEARN.MODE = "unsupervised"
    c.LEARN.STEPS = 200
    c.LEARN.BATCH_SIZE = 64
    c.LEARN.LABELED_BATCH_SIZE = 32
    c.LEARN.LR_CRITIC = 2e-4
    c.LEARN.LR_GENERATOR = 1e-3
    c.LEARN.INFO_WEIGHT = 1.0
    c.LEARN.CLS_WEIGHT = 1.0
    c.LEARN.ARCH = "convnet"      # critic/classifier encoders: convnet or a ResNet name
    c.LEARN.WIDTH = 0.5
    c.LEARN.TEMPERATURE = 0.1
    c.LEARN.EMBED_DIM = 64
    c.EVAL = CfgNode()
    c.EVAL.STEPS = 300            # contrastive training of the fresh encoder (same for every split)
    c.EVAL.LR = 1e-3
    c.EVAL.BATCH_SIZE = 64
    c.EVAL.ARCH = "convnet"
    c.EVAL.WIDTH = 0.5
    c.EVAL.TEMPERATURE = 0.1
    c.EVAL.EMBED_DIM = 64
    c.EVAL.HELDOUT_FRACTION = 0.2
    c.EVAL.EVAL_BATCHES = 10
    c.EVAL.PROBE_EPOCHS = 100
    c.EVAL.COMPARE_RAW = True
    c.OUTPUT_DIR = "output/learn_views"
    c.SEED = 0
    c.DEVICE = "auto"
    return c


def load_cfg(config_file: str | None = None, opts: list[str] | None = None) -> CfgNode:
    """Defaults <- YAML file or packaged name (views/*.yaml) <- KEY VALUE opts; returned frozen."""
    return config.load_cfg(get_cfg, config_file, opts, _validate)


def _validate(cfg: CfgNode):
    if cfg.LEARN.MODE not in MODES:
        raise ValueError(f"LEARN.MODE must be one of {MODES}, got {cfg.LEARN.MODE!r}")
    if cfg.DATA.FORMAT not in ("auto", "stl10", "imagefolder"):
        raise ValueError(f"DATA.FORMAT must be auto, stl10 or imagefolder, got {cfg.DATA.FORMAT!r}")
    from infomin.views.colorspace import SPACES, canonical

    try:
        canonical(cfg.DATA.COLOR_SPACE)
    except (KeyError, ValueError):
        raise ValueError(f"DATA.COLOR_SPACE {cfg.DATA.COLOR_SPACE!r} is not one of {list(SPACES)}") from None
    if not 0 < cfg.DATA.LABELED_FRACTION <= 1:
        raise ValueError(f"DATA.LABELED_FRACTION must be in (0, 1], got {cfg.DATA.LABELED_FRACTION}")


# ------------------------------------------------------------------------------------- data
class _ToSpace:
    """PIL RGB image -> float tensor [3, H, W] in ``space`` (infomin.views.colorspace, which
    matches scikit-image's conversions); channels are standardised later by `Standardize`.
    A class, not a closure, so spawn-started DataLoader workers can pickle it."""

    def __init__(self, space: str):
        self.space = space

    def __call__(self, img):
        from infomin.views.colorspace import convert

        return convert(img, self.space).float()


def _transforms(cfg):
    import torchvision.transforms as T

    size, space = cfg.DATA.IMAGE_SIZE, _ToSpace(cfg.DATA.COLOR_SPACE)
    train = T.Compose([T.RandomResizedCrop(size, scale=(cfg.DATA.CROP_MIN, 1.0)),
                       T.RandomHorizontalFlip(), space])
    test = T.Compose([T.Resize(size), T.CenterCrop(size), space])
    return train, test


class ViewData:
    """The three splits view learning needs: all images, the labelled ones, and the test set."""

    def __init__(self, unlabeled, labeled, labeled_eval, test):
        self.unlabeled, self.labeled, self.labeled_eval, self.test = unlabeled, labeled, labeled_eval, test


STL10_FILES = ("unlabeled_X.bin", "train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")
STL10_URL = "https://cs.stanford.edu/~acoates/stl10/"


def check_stl10_files(root: Path) -> None:
    """The binary files torchvision's STL10 reads (it would only say "use download=True", which
    this tool never does): name the missing ones and where to get them."""
    missing = [f for f in STL10_FILES if not (root / "stl10_binary" / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{root / 'stl10_binary'} lacks {', '.join(missing)}: extract stl10_binary.tar.gz from "
            f"{STL10_URL} into {root}, or point DATA.ROOT at an ImageFolder root (train/, val/).")


def build_data(cfg) -> ViewData:
    from torch.utils.data import ConcatDataset, Subset
    from torchvision.datasets import STL10, ImageFolder

    train_tf, test_tf = _transforms(cfg)
    root = Path(cfg.DATA.ROOT) if cfg.DATA.ROOT else None
    if root is None:
        root = Path(builtin_imagefolder(Path(cfg.OUTPUT_DIR) / "builtin_data", cfg.SEED))
    fmt = cfg.DATA.FORMAT
    if fmt == "auto":
        fmt = "stl10" if (root / "stl10_binary").is_dir() else "imagefolder"
    if fmt == "stl10":
        if not (root / "stl10_binary").is_dir():
            raise FileNotFoundError(f"{root} has no stl10_binary/ folder (the layout torchvision's STL10 reads)")
        check_stl10_files(root)
        make = lambda split, tf: STL10(str(root), split=split, transform=tf, download=False)
        labeled = make("train", train_tf)
        return ViewData(ConcatDataset([make("unlabeled", train_tf), labeled]), labeled,
                        make("train", test_tf), make("test", test_tf))
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise FileNotFoundError(f"an ImageFolder root needs train/ and val/ (or test/) class folders; "
                                f"{root} has {sorted(p.name for p in root.iterdir()) if root.is_dir() else 'nothing'}")
    train = ImageFolder(str(root / "train"), transform=train_tf)
    n = len(train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.SEED)).tolist()
    chosen = sorted(order[: max(1, int(round(n * cfg.DATA.LABELED_FRACTION)))])
    return ViewData(train, Subset(train, chosen),
                    Subset(ImageFolder(str(root / "train"), transform=test_tf), chosen),
                    ImageFolder(str(test_dir), transform=test_tf))


class Standardize(nn.Module):
    """Per-channel (x - mean) / std of the input colour space, measured on training images."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float().clamp_min(1e-6))

    @classmethod
    def measure(cls, dataset, images: int, seed: int = 0) -> "Standardize":
        idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:images]
        x = torch.stack([dataset[int(i)][0] for i in idx])
        return cls(x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)))

    def forward(self, x):
        return (x - self.mean) / self.std


# ------------------------------------------------------------------------------ view learning
def _cycle(loader):
    while True:
        yield from loader


def _classifier(arch, width, in_channels, num_classes):
    enc, dim = mi.build_encoder(arch, in_channels, width)
    return nn.Sequential(enc, nn.Linear(dim, num_classes))


def learn_views(generator: FlowViewGenerator, critic: mi.Critic, images, *, steps: int,
                mode: str = "unsupervised", labeled=None, num_classes: int | None = None,
                lr_critic: float = 2e-4, lr_generator: float = 1e-3, info_weight: float = 1.0,
                cls_weight: float = 1.0, classifier_arch: str = "convnet", classifier_width: float = 0.5,
                device="cpu", log=None) -> list[dict]:
    """Alternate a critic step (max I_NCE on detached views) and a generator step (min I_NCE,
    plus the classifiers' cross-entropy on labelled views in ``semi``/``supervised`` mode).

    ``images`` / ``labeled`` are iterables of (image batch, label batch) of standardised images.
    Returns one record per step: the critic's in-batch I_NCE before the generator step and the CE.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    use_cls = mode != "unsupervised"
    if use_cls and (labeled is None or not num_classes):
        raise ValueError(f"mode {mode!r} needs labeled batches and num_classes")
    info_weight = 0.0 if mode == "supervised" else info_weight
    generator.to(device).train()
    critic.to(device).train()
    params = list(generator.parameters())
    classifiers = None
    if use_cls:
        c1 = generator.view1_channels
        classifiers = nn.ModuleList([_classifier(classifier_arch, classifier_width, c, num_classes)
                                     for c in (c1, generator.channels - c1)]).to(device).train()
        params += list(classifiers.parameters())
    opt_c = torch.optim.Adam(critic.parameters(), lr=lr_critic, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(params, lr=lr_generator, betas=(0.5, 0.999))
    batches, lab = _cycle(images), _cycle(labeled) if use_cls else None
    history = []
    for step in range(1, steps + 1):
        x = next(batches)[0].to(device)
        with torch.no_grad():
            v1, v2 = generator.views(x)
        value, _ = mi.nce_bound(critic(v1, v2))
        opt_c.zero_grad(set_to_none=True)
        (-value).backward()
        opt_c.step()

        v1, v2 = generator.views(x)
        info, _ = mi.nce_bound(critic(v1, v2))
        loss, ce = info_weight * info, torch.zeros((), device=device)
        if use_cls:
            xl, yl = (t.to(device) for t in next(lab))
            u1, u2 = generator.views(xl)
            ce = F.cross_entropy(classifiers[0](u1), yl) + F.cross_entropy(classifiers[1](u2), yl)
            loss = loss + cls_weight * ce
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        record = {"step": step, "i_nce": float(value.detach()), "ce": float(ce.detach())}
        history.append(record)
        if log is not None:
            log(record)
    return history


class _Views:
    """Pair source: (v1, v2) = frozen g's views of standardised image batches (raw split if g is None)."""

    def __init__(self, loader, standardize, generator, device, view1_channels=1):
        self.loader, self.std, self.g, self.device, self.c1 = loader, standardize, generator, device, view1_channels

    @torch.no_grad()
    def split(self, x):
        x = self.std(x.to(self.device))
        if self.g is not None:
            return self.g.views(x)
        return x[:, : self.c1], x[:, self.c1:]

    def __iter__(self):
        for x, _ in self.loader:
            yield self.split(x)


@torch.no_grad()
def _features(critic, views: _Views, loader):
    critic.eval()
    feats, labels = [], []
    for x, y in loader:
        h1, h2 = critic.features(*views.split(x))
        feats.append(torch.cat([h1, h2], 1).cpu())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def linear_probe(train_xy, test_xy, *, epochs: int = 100, lr: float = 1e-2, seed: int = 0) -> float:
    """Top-1 test accuracy (%) of a linear classifier on frozen, standardised features."""
    (xtr, ytr), (xte, yte) = train_xy, test_xy
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    torch.manual_seed(seed)
    clf = nn.Linear(xtr.shape[1], int(max(ytr.max(), yte.max())) + 1)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(xtr)).split(256):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(clf(xtr[idx]), ytr[idx]).backward()
            opt.step()
    with torch.no_grad():
        return 100.0 * float((clf(xte).argmax(1) == yte).float().mean())


def evaluate_views(generator, standardize, data: ViewData, cfg, device="cpu") -> dict:
    """Fresh contrastive encoder on the (frozen) views, held-out I_NCE and linear-probe accuracy."""
    from torch.utils.data import DataLoader, Subset

    e = cfg.EVAL
    if generator is not None:
        generator.eval()
    n = len(data.unlabeled)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.SEED)).tolist()
    cut = int(round(n * e.HELDOUT_FRACTION))
    if min(cut, n - cut) < e.BATCH_SIZE:
        raise ValueError(f"{n} images give fewer than EVAL.BATCH_SIZE={e.BATCH_SIZE} per split; "
                         "lower the batch size or add images")
    gen = torch.Generator().manual_seed(cfg.SEED)
    load = lambda ds, shuffle, drop: DataLoader(ds, batch_size=e.BATCH_SIZE, shuffle=shuffle, drop_last=drop,
                                                num_workers=cap_workers(cfg.DATA.NUM_WORKERS), generator=gen)
    c1 = generator.view1_channels if generator is not None else 1
    views = lambda loader: _Views(loader, standardize, generator, device, c1)
    torch.manual_seed(cfg.SEED)
    critic = mi.image_critic((c1, 3 - c1), arch=e.ARCH, width=e.WIDTH, embed_dim=e.EMBED_DIM,
                             temperature=e.TEMPERATURE)
    est = mi.estimate_mi(views(load(Subset(data.unlabeled, order[cut:]), True, True)),
                         views(load(Subset(data.unlabeled, order[:cut]), False, True)), critic,
                         budget=mi.MIBudget(steps=e.STEPS, lr=e.LR, eval_batches=e.EVAL_BATCHES,
                                            seed=cfg.SEED), device=device)
    acc = linear_probe(_features(critic, views(None), load(data.labeled_eval, False, False)),
                       _features(critic, views(None), load(data.test, False, False)),
                       epochs=e.PROBE_EPOCHS, seed=cfg.SEED)
    return {"i_nce": est.value, "i_nce_std": est.std, "k": est.k, "log_k": est.log_k,
            "near_ceiling": est.near_ceiling, "accuracy": acc}


# ------------------------------------------------------------------------------------ outputs
def save_generator(path, generator: FlowViewGenerator, standardize: Standardize, cfg) -> None:
    state = {"format": "infomin.viewgen", "kind": generator.kind, "blocks": len(generator.blocks),
             "color_space": generator.color_space, "hidden": cfg.GENERATOR.HIDDEN,
             "layers": cfg.GENERATOR.LAYERS, "generator": generator.state_dict(),
             "standardize": standardize.state_dict(), "config": cfg.dump()}
    atomic_torch_save(path, state)


def load_generator(path) -> tuple[FlowViewGenerator, Standardize]:
    """(g, standardize) from a ``generator.pt``: views of a PIL image in g's colour space ``x`` are
    ``g.views(standardize(x))``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != "infomin.viewgen":
        raise ValueError(f"{path} is not a generator written by infomin-learn-views")
    g = FlowViewGenerator(state["kind"], state["blocks"], hidden=state["hidden"], layers=state["layers"],
                          color_space=state["color_space"])
    g.load_state_dict(state["generator"])
    std = Standardize(torch.zeros(g.channels), torch.ones(g.channels))
    std.load_state_dict(state["standardize"])
    return g.eval(), std


def _plot(path: Path, history, results: dict, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    a.plot([h["step"] for h in history], [h["i_nce"] for h in history], lw=1)
    a.set_xlabel("view-learning step")
    a.set_ylabel("critic's in-batch I_NCE (nats)")
    a.set_title("I_NCE between the views during learning")
    for name, r in results.items():
        b.errorbar(r["i_nce"], r["accuracy"], xerr=r["i_nce_std"], fmt="o", capsize=3)
        b.annotate(name, (r["i_nce"], r["accuracy"]), textcoords="offset points", xytext=(5, 5))
    b.margins(0.3)
    b.set_xlabel("held-out I_NCE of a fresh encoder (nats)")
    b.set_ylabel("linear-probe top-1 (%)")
    b.set_title("raw vs learned views")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write_path(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


def run(cfg) -> dict:
    """Learn views, evaluate learned and raw splits, write outputs; returns the summary dict."""
    from torch.utils.data import DataLoader

    out, device = Path(cfg.OUTPUT_DIR), resolve_device(cfg.DEVICE, "DEVICE")
    torch.manual_seed(cfg.SEED)
    data = build_data(cfg)
    standardize = Standardize.measure(data.unlabeled, cfg.DATA.STAT_IMAGES, cfg.SEED).to(device)
    num_classes = _num_classes(data.labeled_eval, data.test)
    lcfg, g = cfg.LEARN, cfg.GENERATOR
    generator = FlowViewGenerator(g.KIND, g.BLOCKS, hidden=g.HIDDEN, layers=g.LAYERS,
                                  color_space=cfg.DATA.COLOR_SPACE)
    critic = mi.image_critic((1, 2), arch=lcfg.ARCH, width=lcfg.WIDTH, embed_dim=lcfg.EMBED_DIM,
                             temperature=lcfg.TEMPERATURE)
    loader = lambda ds, b: DataLoader(ds, batch_size=b, shuffle=True, drop_last=True,
                                      num_workers=cap_workers(cfg.DATA.NUM_WORKERS))
    std_batches = lambda ld: ((standardize(x.to(device)), y) for x, y in ld)

    class _Std:  # re-iterable standardised loader
        def __init__(self, ld):
            self.ld = ld

        def __iter__(self):
            return std_batches(self.ld)

    history = learn_views(
        generator, critic, _Std(loader(data.unlabeled, lcfg.BATCH_SIZE)), steps=lcfg.STEPS, mode=lcfg.MODE,
        labeled=_Std(loader(data.labeled, min(lcfg.LABELED_BATCH_SIZE, len(data.labeled)))),
        num_classes=num_classes, lr_critic=lcfg.LR_CRITIC, lr_generator=lcfg.LR_GENERATOR,
        info_weight=lcfg.INFO_WEIGHT, cls_weight=lcfg.CLS_WEIGHT, classifier_arch=lcfg.ARCH,
        classifier_width=lcfg.WIDTH, device=device)
    save_generator(out / "generator.pt", generator, standardize, cfg)
    atomic_write_text(out / "history.csv", _csv(history))
    results = {f"learned ({lcfg.MODE}, {g.KIND})": evaluate_views(generator, standardize, data, cfg, device)}
    if cfg.EVAL.COMPARE_RAW:
        results[f"raw {cfg.DATA.COLOR_SPACE}"] = evaluate_views(None, standardize, data, cfg, device)
    summary = {"color_space": cfg.DATA.COLOR_SPACE, "mode": lcfg.MODE, "flow": g.KIND,
               "results": results, "max_roundtrip_error": _roundtrip_error(generator, data, standardize, device)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    _plot(out / "view_learning.png", history, results,
          f"{cfg.DATA.COLOR_SPACE} -> {g.KIND} flow, {lcfg.MODE}, {lcfg.STEPS} steps")
    return summary


def _num_classes(*datasets) -> int:
    def classes(ds):
        while hasattr(ds, "dataset"):
            ds = ds.dataset
        return len(getattr(ds, "classes", [])) or 10
    return max(classes(d) for d in datasets)


@torch.no_grad()
def _roundtrip_error(generator, data, standardize, device) -> float:
    x = standardize(torch.stack([data.test[i][0] for i in range(min(8, len(data.test)))]).to(device))
    generator.eval()
    return float((generator.inverse(generator(x)[0]) - x).abs().max())


def _csv(rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["step"])
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
