"""What a conversion did, in a form people read (`report()`) and tools use (the fields)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .resnet import ResNetArch


@dataclass
class ConversionSummary:
    """Result of `convert_checkpoint`: the inferred architecture, kept and dropped tensors."""

    src: str
    dst: str
    fmt: str
    ema: bool
    source: str  # where in the file the backbone was, e.g. "model[module.encoder.*]"
    arch: ResNetArch
    renamed: dict  # torchvision name -> Detectron2 name, for every converted tensor
    dropped: list  # formats.Dropped groups
    ignored: list = field(default_factory=list)  # top-level entries without model weights
    notes: list = field(default_factory=list)  # warnings the user should read

    @property
    def converted(self) -> int:
        return len(self.renamed)

    @property
    def detectron2_settings(self) -> dict:
        return self.arch.detectron2_settings()

    def detectron2_opts(self) -> list:
        """The settings as `KEY VALUE` command-line opts for tools/train_net.py."""
        opts = []
        for key, value in self.detectron2_settings.items():
            text = value if isinstance(value, str) else _yaml(value).replace(" ", "")
            opts += [key, text]
        return opts

    def report(self) -> str:
        a = self.arch
        lines = [
            f"Converted {self.src} -> {self.dst}",
            f"  format: {self.fmt}{' (--ema: momentum encoder)' if self.ema else ''}; backbone taken from {self.source}",
            f"  architecture: {a.name} (depth {a.depth}, {a.block} blocks {list(a.blocks_per_stage)}, "
            + (f"groups {a.groups} x width {a.width_per_group}, " if a.block == "bottleneck" else "")
            + f"stem {a.stem_channels}, res2 {a.res2_channels} channels)",
            f"  converted: {self.converted} tensors (stem.*, res2-res5.*)",
        ]
        if self.dropped:
            lines.append(f"  dropped: {sum(d.count for d in self.dropped)} tensors")
            for d in self.dropped:
                lines.append(f"    {d.pattern} ({d.count}): {d.reason}")
        if self.ignored:
            lines.append(f"  not model weights, ignored: {', '.join(map(str, self.ignored))}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        lines.append("Detectron2 config these weights need (configs/detection/*/*_infomin.yaml set them for resnet50):")
        lines += [f"  {k}: {_yaml(v)}" for k, v in self.detectron2_settings.items()]
        lines.append("Then fine-tune with: MODEL.WEIGHTS " + self.dst)
        return "\n".join(lines)

    __str__ = report


def _yaml(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)
