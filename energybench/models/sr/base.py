"""The interface every super-resolution model implements, image (per-frame) or online video.

Models are plain ``nn.Module``s; the lifecycle drives them only through this interface, so a
per-frame model and a recurrent online model are trained, served and evaluated by the same code.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
from torch import nn


class OnlineModel(Protocol):
    """The calls the lifecycle makes on a super-resolution model beyond ``forward``: an
    :class:`SRModel`, or a wrapper of one (compressed, exported, on a serving backend)."""

    temporal: bool

    def __call__(self, lr: torch.Tensor) -> torch.Tensor: ...

    def init_state(self, lr: torch.Tensor) -> Any: ...

    def step(self, lr: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...

    def forward_clip(self, frames: torch.Tensor) -> torch.Tensor: ...


def online(model: nn.Module) -> OnlineModel:
    """``model`` typed as an :class:`OnlineModel` (no check: torch types a module's attributes
    as ``Tensor | Module``, so a type checker cannot see methods the model class defines)."""
    return cast(OnlineModel, model)


class SRModel(nn.Module):
    """Base class. ``forward(lr)`` maps (B,3,h,w) in [0,1] to (B,3,h*scale,w*scale).

    Online video models set ``temporal = True`` and override :meth:`step`; they may use the
    current frame, past frames and a hidden state, never future frames.
    """

    scale: int = 4
    temporal: bool = False

    def init_state(self, lr: torch.Tensor) -> Any:
        """State before the first frame of a clip (None for per-frame models)."""
        return None

    def step(self, lr: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Super-resolve one frame (B,3,h,w) given the state; return (sr, new_state)."""
        return self(lr), state

    def forward_clip(self, frames: torch.Tensor) -> torch.Tensor:
        """Super-resolve a clip (B,T,3,h,w) frame by frame, online, in order."""
        state = self.init_state(frames[:, 0])
        outs = []
        for t in range(frames.shape[1]):
            out, state = self.step(frames[:, t], state)
            outs.append(out)
        return torch.stack(outs, dim=1)
