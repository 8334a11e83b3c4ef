"""The model registry. Entries are lazy: a model's module is imported only when it is used."""

from __future__ import annotations

from torch import nn

from energybench.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")

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
