"""``espcn``: a lightweight per-frame image SR network (ESPCN-like), also the default teacher.

Shi et al. 2016 (ESPCN): a few convolutions at LR resolution, then a sub-pixel (pixel-shuffle)
upsampling. Our choices: ReLU instead of tanh, the same width in every hidden layer (default 32),
a 5x5 first layer and 3x3 after it, and a bicubic skip (the network predicts the residual over
MATLAB-bicubic upsampling, last layer initialised near zero), so an untrained model already
equals bicubic and a few hundred steps suffice to beat it. ``residual=False`` gives plain ESPCN.

The model only computes; training, measuring and loading checkpoints live elsewhere
(:func:`espcn_from_state_dict` rebuilds the architecture from a saved state_dict).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from energybench.models.sr.base import SRModel
from energybench.models.sr.bicubic import BicubicUpsample, shuffle_with_residual


class ESPCN(SRModel):
    """Per-frame SR: conv(k×k) → ReLU → [conv3×3 → ReLU]* → conv3×3 → pixel-shuffle (+ bicubic)."""

    def __init__(
        self,
        channels: int = 32,
        layers: int = 3,
        first_kernel: int = 5,
        scale: int = 4,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"espcn needs at least 2 layers, got {layers}")
        if first_kernel % 2 == 0:
            raise ValueError(f"first_kernel must be odd, got {first_kernel}")
        self.scale, self.residual = scale, residual
        self.channels, self.layers, self.first_kernel = channels, layers, first_kernel
        convs = [nn.Conv2d(3, channels, first_kernel, padding=first_kernel // 2)]
        convs += [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers - 2)]
        convs.append(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1))
        self.convs = nn.ModuleList(convs)
        self.up = BicubicUpsample(scale) if residual else None
        for conv in convs:
            assert conv.bias is not None  # every conv is built with a bias
            nn.init.zeros_(conv.bias)
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.normal_(convs[-1].weight, std=1e-3 if residual else 0.02)

    def sr_convs(self) -> list[nn.Conv2d]:
        """The convolutions in forward order (what kernel grafts are initialised from)."""
        return cast("list[nn.Conv2d]", list(self.convs))  # a ModuleList types items as Module

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = lr
        for conv in self.convs[:-1]:
            x = F.relu(conv(x))
        return shuffle_with_residual(self.convs[-1](x), lr, self.up, self.scale)


def espcn(
    channels: int = 32,
    layers: int = 3,
    first_kernel: int = 5,
    scale: int = 4,
    residual: bool = True,
) -> ESPCN:
    """ESPCN-like per-frame image SR (ReLU, pixel shuffle, bicubic residual); small by default."""
    return ESPCN(channels, layers, first_kernel, scale, residual)


def espcn_from_state_dict(state: dict[str, torch.Tensor], residual: bool = True) -> ESPCN:
    """Rebuild an :class:`ESPCN` whose architecture matches ``state`` and load it."""
    idx = sorted(
        int(k.split(".")[1]) for k in state if k.startswith("convs.") and k.endswith("weight")
    )
    if not idx:
        raise ValueError("not an espcn state_dict (no 'convs.N.weight' entries)")
    first = state["convs.0.weight"]
    last = state[f"convs.{idx[-1]}.weight"]
    scale = int(round((last.shape[0] / 3) ** 0.5))
    model = ESPCN(
        channels=int(first.shape[0]),
        layers=len(idx),
        first_kernel=int(first.shape[-1]),
        scale=scale,
        residual=residual,
    )
    model.load_state_dict(state)
    return model
