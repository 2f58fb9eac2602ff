"""A learned colour space: a pixel-wise invertible flow g whose output channels are split into views.

InfoMin's view learning (Tian et al. 2020, Sec. 4.1) keeps every bit of the image (g is
invertible) while it moves information between the views v1 = g(X)[:, :1] and v2 = g(X)[:, 1:3].
Every layer is a 1x1 convolution, so g acts on each pixel's colour vector independently.

Two block types:

* ``"vp"`` additive coupling (NICE): y_a = x_a + F(x_b), y_b = x_b + G(y_a). Triangular Jacobian
  with unit diagonal, so log|det J| = 0 exactly (volume preserving).
* ``"nvp"`` affine coupling (RealNVP): y_a = x_a * exp(s(x_b)) + t(x_b), then the same for x_b
  given y_a; log|det J| = sum(s) per pixel.

Between blocks the channels are rolled by one, so each channel is updated from each other one,
and the output is rolled back so that channel order is the input's.
The last conv of every coupling network starts at zero: an untrained g is the identity and its
views are exactly the raw split of the input colour space, the baseline view learning starts from.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["AdditiveCoupling", "AffineCoupling", "FlowViewGenerator", "BLOCK_TYPES"]


def _pixel_mlp(c_in: int, c_out: int, hidden: int, layers: int) -> nn.Sequential:
    mods, c = [], c_in
    for _ in range(layers - 1):
        mods += [nn.Conv2d(c, hidden, 1), nn.LeakyReLU(0.2, inplace=True)]
        c = hidden
    last = nn.Conv2d(c, c_out, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*mods, last)


class _Coupling(nn.Module):
    def __init__(self, channels: int, split: int, hidden: int, layers: int):
        super().__init__()
        if not 0 < split < channels:
            raise ValueError(f"split must be in (0, {channels}), got {split}")
        self.split, self.channels = split, channels

    def _halves(self, x):
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected a [N, {self.channels}, H, W] tensor, got {tuple(x.shape)}")
        return x[:, : self.split], x[:, self.split:]


class AdditiveCoupling(_Coupling):
    """Volume-preserving block: log-determinant identically zero."""

    def __init__(self, channels: int = 3, split: int = 1, hidden: int = 32, layers: int = 3):
        super().__init__(channels, split, hidden, layers)
        self.f = _pixel_mlp(channels - split, split, hidden, layers)
        self.g = _pixel_mlp(split, channels - split, hidden, layers)

    def forward(self, x):
        a, b = self._halves(x)
        a = a + self.f(b)
        b = b + self.g(a)
        return torch.cat([a, b], 1), x.new_zeros(x.shape[0])

    def inverse(self, y):
        a, b = self._halves(y)
        b = b - self.g(a)
        a = a - self.f(b)
        return torch.cat([a, b], 1)


class AffineCoupling(_Coupling):
    """Non-volume-preserving block; scales are tanh-bounded (|s| <= scale_bound) for stability."""

    def __init__(self, channels: int = 3, split: int = 1, hidden: int = 32, layers: int = 3,
                 scale_bound: float = 2.0):
        super().__init__(channels, split, hidden, layers)
        self.scale_bound = scale_bound
        self.f = _pixel_mlp(channels - split, 2 * split, hidden, layers)
        self.g = _pixel_mlp(split, 2 * (channels - split), hidden, layers)

    def _st(self, net, cond):
        s, t = net(cond).chunk(2, dim=1)
        return self.scale_bound * torch.tanh(s / self.scale_bound), t

    def forward(self, x):
        a, b = self._halves(x)
        s1, t1 = self._st(self.f, b)
        a = a * torch.exp(s1) + t1
        s2, t2 = self._st(self.g, a)
        b = b * torch.exp(s2) + t2
        return torch.cat([a, b], 1), s1.flatten(1).sum(1) + s2.flatten(1).sum(1)

    def inverse(self, y):
        a, b = self._halves(y)
        s2, t2 = self._st(self.g, a)
        b = (b - t2) * torch.exp(-s2)
        s1, t1 = self._st(self.f, b)
        a = (a - t1) * torch.exp(-s1)
        return torch.cat([a, b], 1)


BLOCK_TYPES = {"vp": AdditiveCoupling, "nvp": AffineCoupling}


class FlowViewGenerator(nn.Module):
    """g: a stack of coupling blocks over the colour channels; ``views(x)`` = (g(x)_1, g(x)_{2:3}).

    ``x`` is a normalised image in whatever colour space the data pipeline produced (RGB, YDbDr,
    Lab, ...); ``color_space`` is recorded so a saved generator says what it expects.
    """

    def __init__(self, kind: str = "vp", blocks: int = 4, channels: int = 3, hidden: int = 32,
                 layers: int = 3, view1_channels: int = 1, color_space: str = "RGB"):
        super().__init__()
        if kind not in BLOCK_TYPES:
            raise ValueError(f"kind must be one of {sorted(BLOCK_TYPES)}, got {kind!r}")
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        if not 0 < view1_channels < channels:
            raise ValueError(f"view1_channels must be in (0, {channels}), got {view1_channels}")
        self.kind, self.channels, self.view1_channels = kind, channels, view1_channels
        self.color_space = color_space
        self.blocks = nn.ModuleList(BLOCK_TYPES[kind](channels, split=1, hidden=hidden, layers=layers)
                                    for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(g(x), log|det dg/dx| summed over pixels, one value per image)."""
        logdet = x.new_zeros(x.shape[0])
        for i, block in enumerate(self.blocks):
            if i:
                x = torch.roll(x, 1, dims=1)  # a permutation: volume preserving, inverted exactly
            x, ld = block(x)
            logdet = logdet + ld
        # undo the accumulated roll: with identity couplings, g is exactly the identity
        return torch.roll(x, 1 - len(self.blocks), dims=1), logdet

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y = torch.roll(y, len(self.blocks) - 1, dims=1)
        for i in reversed(range(len(self.blocks))):
            y = self.blocks[i].inverse(y)
            if i:
                y = torch.roll(y, -1, dims=1)
        return y

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, _ = self(x)
        return y[:, : self.view1_channels], y[:, self.view1_channels:]
