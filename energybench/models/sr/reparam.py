"""Structural re-parameterisation: multi-branch linear conv blocks that merge into one conv.

Training-time block (:class:`RepConv`): the sum of parallel *linear* branches, applied before
the model's non-linearity. Branches (any subset):

- ``main``: k×k conv (+ optional BN)                  — the base network's convolution
- ``graft``: k'×k' conv (+ optional BN), k' ≤ kernel   — a kernel graft (CKBG)
- ``conv1x1``: 1×1 conv (+ optional BN)               — RepVGG/ECBSR
- ``seq``: 1×1 conv → k×k conv (+ optional BN)        — ECBSR's expand-squeeze sequence
- ``identity``: x, optionally × a learnable per-channel scale, optionally BN   — RepVGG

Merge algebra (RepVGG / ECBSR), all exact in eval mode:

- BN fold: ``W·γ/σ``, ``β + (b − μ)·γ/σ`` with ``σ = sqrt(var + eps)``;
- parallel branches: ``K = Σ pad(K_i → k×k)``, ``b = Σ b_i`` (zero-padding a 1×1 or smaller
  kernel to the centre of k×k is exact because all branches use "same" padding);
- identity: the Dirac kernel (1 at the centre of ``K[c, c]``), times its scale/BN;
- 1×1 → k×k sequence: ``W[o, i] = Σ_m K2[o, m] · K1[m, i]``,
  ``b = b2 + Σ_m b1[m] · Σ_xy K2[o, m, x, y]``. This is exact at the borders only because the
  forward pass pads the 1×1 output with its bias ``b1`` instead of zeros (ECBSR): in the merged
  conv, zero-padded input gives ``K1·0 + b1 = b1`` at the border positions too.

:meth:`RepConv.reparameterize` returns a plain ``nn.Conv2d``; :func:`reparameterize_modules`
swaps every RepConv inside a copy of a model. BN running statistics are used as they are, so
merge in eval mode semantics (BN in training mode is not a fixed linear map). Nothing here
trains or knows about SR.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

BRANCHES = ("main", "graft", "conv1x1", "seq", "identity")

Kernel = tuple[torch.Tensor, torch.Tensor]


class _Branch(Protocol):
    """A branch of a :class:`RepConv` (:class:`ConvBN`, :class:`SeqConv`, :class:`Identity`)."""

    def kernel_bias(self, size: int) -> Kernel: ...


def fuse_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> Kernel:
    """Fold an eval-mode BatchNorm that follows a conv into the conv's (weight, bias)."""
    assert bn.running_mean is not None and bn.running_var is not None
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    t = gamma / std
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * t.reshape(-1, 1, 1, 1), beta + (b - bn.running_mean) * t


def pad_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad an odd k×k kernel (O, I, k, k) to the centre of size×size."""
    k = weight.shape[-1]
    if k > size or (size - k) % 2:
        raise ValueError(f"cannot centre a {k}x{k} kernel in {size}x{size}")
    p = (size - k) // 2
    return F.pad(weight, (p, p, p, p))


def dirac_kernel(channels: int, size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The identity as a (C, C, size, size) conv kernel."""
    w = torch.zeros(channels, channels, size, size, dtype=dtype, device=device)
    idx = torch.arange(channels)
    w[idx, idx, size // 2, size // 2] = 1.0
    return w


def merge_sequential(
    k1: torch.Tensor, b1: torch.Tensor, k2: torch.Tensor, b2: torch.Tensor
) -> Kernel:
    """Merge a 1×1 conv (k1, b1) followed by a k×k conv (k2, b2) into one k×k conv.

    Exact when the 1×1 output is padded with ``b1`` (see module docstring).
    """
    w = torch.einsum("omyx,mi->oiyx", k2, k1[:, :, 0, 0])
    b = b2 + torch.einsum("omyx,m->o", k2, b1)
    return w, b


class ConvBN(nn.Module):
    """A k×k conv ("same" padding) optionally followed by BatchNorm; mergeable to (W, b)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, bn: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel sizes must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=not bn)
        self.bn = nn.BatchNorm2d(out_ch) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) if self.bn is not None else y

    def kernel_bias(self, size: int) -> Kernel:
        w, b = self.conv.weight, self.conv.bias
        if self.bn is not None:
            w, b = fuse_bn(w, b, self.bn)
        elif b is None:
            b = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        return pad_kernel(w, size), b


class SeqConv(nn.Module):
    """1×1 conv (in→mid) → k×k conv (mid→out, optional BN); the 1×1 output is bias-padded."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int, kernel_size: int, bn: bool = False):
        super().__init__()
        self.pad = kernel_size // 2
        self.expand = nn.Conv2d(in_ch, mid_ch, 1)
        self.conv = nn.Conv2d(mid_ch, out_ch, kernel_size, padding=0, bias=not bn)
        self.bn = nn.BatchNorm2d(out_ch) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x)
        b1 = self.expand.bias.reshape(1, -1, 1, 1)  # type: ignore[union-attr]
        p = self.pad
        y = F.pad(y - b1, (p, p, p, p)) + b1  # pad with the bias, not zeros
        y = self.conv(y)
        return self.bn(y) if self.bn is not None else y

    def kernel_bias(self, size: int) -> Kernel:
        w2, b2 = self.conv.weight, self.conv.bias
        if self.bn is not None:
            w2, b2 = fuse_bn(w2, b2, self.bn)
        elif b2 is None:
            b2 = torch.zeros(w2.shape[0], dtype=w2.dtype, device=w2.device)
        assert self.expand.bias is not None
        w, b = merge_sequential(self.expand.weight, self.expand.bias, w2, b2)
        return pad_kernel(w, size), b


class Identity(nn.Module):
    """x, times an optional learnable per-channel scale, optionally followed by BN."""

    def __init__(self, channels: int, learnable: bool = False, init: float = 1.0, bn: bool = False):
        super().__init__()
        self.channels = channels
        self.scale = nn.Parameter(torch.full((channels,), float(init))) if learnable else None
        self.bn = nn.BatchNorm2d(channels) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.scale.reshape(1, -1, 1, 1) if self.scale is not None else x
        return self.bn(y) if self.bn is not None else y

    def kernel_bias(self, size: int) -> Kernel:
        ref = self.scale if self.scale is not None else self.bn.weight if self.bn else None
        dtype = ref.dtype if ref is not None else torch.float32
        device = ref.device if ref is not None else None
        w = dirac_kernel(self.channels, size, dtype=dtype, device=device)
        if self.scale is not None:
            w = w * self.scale.reshape(-1, 1, 1, 1)
        b = torch.zeros(self.channels, dtype=dtype, device=device)
        if self.bn is not None:
            w, b = fuse_bn(w, b, self.bn)
        return w, b


class RepConv(nn.Module):
    """Parallel linear conv branches summed (no activation); merges into one conv.

    ``branches`` names any of :data:`BRANCHES`; ``identity`` needs ``in_ch == out_ch``;
    ``seq_channels`` is the 1×1 expansion width of ``seq`` (default ``2 * out_ch``). The merged
    conv has ``kernel_size`` (the largest branch kernel).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        branches: Sequence[str] = ("main", "conv1x1", "identity"),
        bn: bool = False,
        graft_kernel: int | None = None,
        seq_channels: int | None = None,
        identity_learnable: bool = False,
    ) -> None:
        super().__init__()
        unknown = [b for b in branches if b not in BRANCHES]
        if unknown or not branches:
            raise ValueError(f"unknown or no branches {list(branches)}; choose from {BRANCHES}")
        graft_kernel = graft_kernel or kernel_size
        if graft_kernel > kernel_size:
            raise ValueError(f"graft kernel {graft_kernel} exceeds the block's {kernel_size}")
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        mods: dict[str, nn.Module] = {}
        for name in branches:
            if name == "main":
                mods[name] = ConvBN(in_ch, out_ch, kernel_size, bn)
            elif name == "graft":
                mods[name] = ConvBN(in_ch, out_ch, graft_kernel, bn)
            elif name == "conv1x1":
                mods[name] = ConvBN(in_ch, out_ch, 1, bn)
            elif name == "seq":
                mods[name] = SeqConv(in_ch, out_ch, seq_channels or 2 * out_ch, kernel_size, bn)
            elif name == "identity":
                if in_ch != out_ch:
                    raise ValueError(
                        f"identity branch needs in == out channels ({in_ch} != {out_ch})"
                    )
                mods[name] = Identity(out_ch, learnable=identity_learnable, bn=bn)
        self.branches = nn.ModuleDict(mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for branch in self.branches.values():
            y = branch(x)
            out = y if out is None else out + y
        assert out is not None
        return out

    @torch.no_grad()
    def kernel_bias(self) -> Kernel:
        """The merged (weight, bias) of all branches (BN in eval semantics)."""
        branches = cast("list[_Branch]", list(self.branches.values()))
        ws, bs = zip(*(b.kernel_bias(self.kernel_size) for b in branches), strict=True)
        return torch.stack(ws).sum(0), torch.stack(bs).sum(0)

    @torch.no_grad()
    def reparameterize(self) -> nn.Conv2d:
        """A new single ``nn.Conv2d`` computing the same function as this block in eval mode."""
        w, b = self.kernel_bias()
        conv = nn.Conv2d(self.in_ch, self.out_ch, self.kernel_size, padding=self.kernel_size // 2)
        conv = conv.to(device=w.device, dtype=w.dtype)
        conv.weight.copy_(w)
        conv.bias.copy_(b)  # type: ignore[union-attr]
        return conv


def reparameterize_modules(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every :class:`RepConv` replaced by its merged conv."""
    new = copy.deepcopy(model)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, RepConv):
                setattr(parent, name, child.reparameterize())
            else:
                swap(child)

    if isinstance(new, RepConv):
        return new.reparameterize()
    swap(new)
    return new


def reparameterize_model(model: nn.Module) -> nn.Module:
    """The single-path version of ``model``: its own ``reparameterize()`` if it has one
    (e.g. CKBG returns a plain CKBG), else :func:`reparameterize_modules`. The input is not
    modified; the result is in eval mode."""
    fn = getattr(model, "reparameterize", None)
    merged = fn() if callable(fn) else reparameterize_modules(model)
    return merged.eval()
