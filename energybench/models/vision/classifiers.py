"""Image classifiers by name from torchvision (``tv:<name>``) and timm (``timm:<name>``).

Never with pretrained weights (nothing is downloaded); ``weights: file.pt`` loads a state dict
the user has. The input is adapted to the dataset (:class:`~energybench.data.images.ImageSpec`,
passed as ``data`` by the lifecycle): ``num_classes`` and input channels default to the
dataset's. timm models take ``in_chans`` natively; for torchvision models the first ``Conv2d``
that reads 3 channels is replaced by the same conv reading ``in_chans`` channels (freshly
initialised, like the rest of the network) - cheaper than repeating a grey channel three times
at every inference. Resolution: convolutional models pool globally and take any size; models
with a fixed input size (torchvision ``vit_*``, timm models that accept ``img_size``) are built
for the dataset's size. Constructor options (``width_mult``, ``drop_rate``, ...) pass through.

This module builds models; it never trains, measures or reads data.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from energybench.data.images import ImageSpec
from energybench.errors import UserError


class ModelConfigError(UserError, ValueError):
    """A model option that cannot work; ``str()`` is a user-facing sentence."""


@lru_cache(maxsize=1)
def torchvision_names() -> list[str]:
    """Classification models of torchvision (detection/segmentation/video excluded)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


@lru_cache(maxsize=1)
def timm_names() -> list[str]:
    """Every architecture timm can build (pretrained tags excluded)."""
    import timm

    return sorted(timm.list_models())


def _spec(data: ImageSpec | dict[str, int] | None) -> ImageSpec | None:
    if data is None or isinstance(data, ImageSpec):
        return data
    return ImageSpec(**data)


def _io(
    num_classes: int | None, in_chans: int | None, data: ImageSpec | dict[str, int] | None
) -> tuple[int, int, int | None]:
    spec = _spec(data)
    classes = num_classes or (spec.num_classes if spec else 1000)
    chans = in_chans or (spec.channels if spec else 3)
    return classes, chans, spec.size_px if spec else None


def replace_first_conv(model: nn.Module, in_chans: int) -> str | None:
    """Make the first ``Conv2d`` reading 3 channels read ``in_chans``; its qualified name."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3 and m.groups == 1:
            new = nn.Conv2d(
                in_chans,
                m.out_channels,
                m.kernel_size,  # type: ignore[arg-type]
                m.stride,  # type: ignore[arg-type]
                m.padding,  # type: ignore[arg-type]
                m.dilation,  # type: ignore[arg-type]
                1,
                m.bias is not None,
                m.padding_mode,
            )
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, new)
            return name
    return None


def load_weights(model: nn.Module, weights: str) -> None:
    """Load a state dict from ``weights`` (a ``.pt``/``.pth`` file, or one with 'state_dict')."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelConfigError(
            f"weights file '{weights}' not found; give the path of a saved state dict "
            "(nothing is downloaded)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelConfigError(
            f"weights '{weights}' do not fit the model ({' '.join(first)}); check "
            "num_classes/in_chans match the checkpoint"
        ) from None


def torchvision_classifier(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    weights: str | None = None,
    data: ImageSpec | dict[str, int] | None = None,
    **options: Any,
) -> nn.Module:
    """A torchvision classifier, untrained (``get_model(name, weights=None, ...)``)."""
    import torchvision

    classes, chans, size = _io(num_classes, in_chans, data)
    if size is not None and name.startswith("vit_") and "image_size" not in options:
        options["image_size"] = size
    try:
        model = torchvision.models.get_model(name, weights=None, num_classes=classes, **options)
    except TypeError as exc:
        raise ModelConfigError(f"torchvision model '{name}': bad option ({exc})") from None
    if chans != 3 and replace_first_conv(model, chans) is None:
        raise ModelConfigError(
            f"torchvision model '{name}' has no 3-channel first conv to adapt to "
            f"{chans} input channel(s)"
        )
    if weights:
        load_weights(model, weights)
    return model


def timm_classifier(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    weights: str | None = None,
    data: ImageSpec | dict[str, int] | None = None,
    **options: Any,
) -> nn.Module:
    """A timm classifier, untrained (``timm.create_model(name, pretrained=False, ...)``)."""
    import timm

    classes, chans, size = _io(num_classes, in_chans, data)
    kw = dict(pretrained=False, num_classes=classes, in_chans=chans, **options)
    try:
        if size is not None and "img_size" not in options:
            try:
                model = timm.create_model(name, img_size=size, **kw)
            except TypeError as exc:
                if "img_size" not in str(exc):
                    raise
                model = timm.create_model(name, **kw)
        else:
            model = timm.create_model(name, **kw)
    except TypeError as exc:
        raise ModelConfigError(f"timm model '{name}': bad option ({exc})") from None
    if weights:
        load_weights(model, weights)
    return model
