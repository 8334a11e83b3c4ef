"""The model registry. Entries are lazy: a model's module is imported only when it is used."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from energybench.plugins.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model", Callable)

MODELS.register(
    "bicubic",
    "energybench.models.sr.bicubic:bicubic",
    help="bicubic x4 upsampling (MATLAB imresize kernel, same as the BI degradation); no params",
)
MODELS.register(
    "espcn",
    "energybench.models.sr.espcn:espcn",
    help="ESPCN-like per-frame image SR (ReLU, pixel shuffle, bicubic residual); also a teacher",
)
MODELS.register(
    "ckbg",
    "energybench.models.sr.ckbg:ckbg",
    help="CKBG online recurrent VSR (current + previous frame + hidden state); grafts=true adds "
    "kernel grafts from an image SR teacher (an entry in 'uses'); merge with reparameterize",
)
MODELS.register_family(
    "tv",
    "energybench.models.vision.classifiers:torchvision_classifier",
    "energybench.models.vision.classifiers:torchvision_names",
    help="any torchvision classifier, e.g. tv:resnet18, tv:mobilenet_v3_small (weights=None; "
    "constructor options pass through; first conv adapted to the dataset's channels)",
)
MODELS.register_family(
    "timm",
    "energybench.models.vision.classifiers:timm_classifier",
    "energybench.models.vision.classifiers:timm_names",
    help="any timm model, e.g. timm:repvgg_a0, timm:mobileone_s0, timm:ghostnet_050 "
    "(pretrained=False; in_chans and num_classes from the dataset)",
)
