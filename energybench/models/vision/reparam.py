"""Structural re-parameterisation of classifiers whose blocks merge themselves (timm's RepVGG,
MobileOne, FastViT, RepGhost, ...), through timm's own ``reparameterize_model``.

Only blocks with a ``reparameterize()`` (or ``fuse()``) method are merged; the merged model
computes the same function in eval mode (BatchNorm folded with running statistics). Nothing
here trains or measures.
"""

from __future__ import annotations

from torch import nn


def reparam_blocks(model: nn.Module) -> list[str]:
    """Qualified names of sub-modules that can merge their branches."""
    return [
        name
        for name, m in model.named_modules()
        if m is not model and (hasattr(m, "reparameterize") or hasattr(m, "fuse"))
    ]


def has_reparam_blocks(model: nn.Module) -> bool:
    return bool(reparam_blocks(model))


def reparameterize_blocks(model: nn.Module) -> nn.Module:
    """A merged copy of ``model`` (eval mode), via ``timm.utils.reparameterize_model``."""
    from timm.utils.model import reparameterize_model

    return reparameterize_model(model.eval(), inplace=False).eval()
