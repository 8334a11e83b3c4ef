"""``ckbg``: online video SR with convolutional kernel bypass grafts (Xiao et al., TMM 2023).

Online and recurrent: frame ``t`` is super-resolved from the current LR frame, the previous LR
frame and a hidden state (the previous frame's features); no future frames are used, so there is
no buffering latency. Our architecture (the paper, arXiv 2208.02470, does not fix the layer
counts we use; these are our choice), all at LR resolution:

    x = concat(lr_t, lr_{t-1}, h_{t-1})          3 + 3 + C channels
    f = ReLU(head(x))                            3×3 conv → C
    f = ReLU(body_i(f))  for i in 1..blocks      3×3 conv C → C
    h_t = f                                       the hidden state for the next frame
    sr_t = pixel_shuffle(tail(f)) + bicubic(lr_t) 3×3 conv C → 3·s², residual over bicubic

Every conv is a :class:`~energybench.models.sr.reparam.RepConv`. The base network has only the
``main`` branch. With ``grafts=True`` each conv also gets a parallel linear ``graft`` branch, summed
before the ReLU. Grafts are
initialised from the kernels of an external pretrained *image* SR model (the teacher, an
``espcn`` trained earlier in the suite and handed over as ``upstream``, or loaded from
``teacher_weights``): teacher layer ``k`` → graft of layer ``k``, input channels of the head's
graft mapped to the current frame only; body blocks beyond the teacher's depth get identity
grafts; the main branches then start small (``main_init_scale``), so that the untrained grafted
network already computes the teacher's output on the current frame and training adds the
temporal part. At test time :meth:`CKBG.reparameterize` merges every block into one conv
(single path): same outputs, plain-conv speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from energybench.models.sr.base import SRModel
from energybench.models.sr.bicubic import BicubicUpsample, shuffle_with_residual
from energybench.models.sr.reparam import RepConv, pad_kernel, reparameterize_modules

State = tuple[torch.Tensor, torch.Tensor]


def _fit_kernel(w: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-pad, or centre-crop (an approximation, reported by the caller), to size×size."""
    k = w.shape[-1]
    if k <= size:
        return pad_kernel(w, size)
    c = (k - size) // 2
    return w[..., c : c + size, c : c + size]


class CKBG(SRModel):
    """Recurrent online ×``scale`` SR; multi-branch (grafted) or single-path after merging."""

    temporal = True

    def __init__(
        self,
        channels: int = 24,
        blocks: int = 2,
        scale: int = 4,
        grafts: bool = False,
        graft_kernel: int = 3,
        main_init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"ckbg needs at least 1 body block, got {blocks}")
        self.scale, self.channels, self.blocks = scale, channels, blocks
        self.grafted = grafts
        self.main_init_scale = main_init_scale
        branches = ("main", "graft") if grafts else ("main",)

        def block(cin: int, cout: int) -> RepConv:
            return RepConv(cin, cout, 3, branches, graft_kernel=graft_kernel)

        self.head = block(6 + channels, channels)
        self.body = nn.ModuleList(block(channels, channels) for _ in range(blocks))
        self.tail = block(channels, 3 * scale * scale)
        self.up = BicubicUpsample(scale)
        self.graft_source: dict[str, Any] = {}
        for conv in self._convs():
            if isinstance(conv, RepConv):
                for b in conv.branches.values():
                    for m in b.modules():
                        if isinstance(m, nn.Conv2d):
                            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                            if m.bias is not None:
                                nn.init.zeros_(m.bias)
        tail = _branch_conv(self.tail, "main") if isinstance(self.tail, RepConv) else None
        if tail is not None:  # start at bicubic: the network learns the residual
            nn.init.normal_(tail.weight, std=1e-3)

    def _convs(self) -> list[nn.Module]:
        return [self.head, *self.body, self.tail]

    # -- online inference -------------------------------------------------------------------
    def init_state(self, lr: torch.Tensor) -> State:
        b, _, h, w = lr.shape
        return lr, lr.new_zeros(b, self.channels, h, w)

    def step(self, lr: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        prev, hidden = state
        f = F.relu(self.head(torch.cat([lr, prev, hidden], dim=1)))
        for blk in self.body:
            f = F.relu(blk(f))
        out = shuffle_with_residual(self.tail(f), lr, self.up, self.scale)
        return out, (lr, f)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """One frame with a fresh state (the first frame of a clip)."""
        return self.step(lr, self.init_state(lr))[0]

    # -- grafts and merging -----------------------------------------------------------------
    @torch.no_grad()
    def graft_from(self, teacher: nn.Module, source: str = "teacher") -> dict[str, Any]:
        """Initialise the graft branches from an image SR model's convolutions (see module doc).

        The teacher must expose ``sr_convs()`` (first conv on the RGB frame, hidden convs, last
        conv producing ``3·scale²`` channels for pixel shuffle). Returns what was mapped.
        """
        if not self.grafted:
            raise ValueError("graft_from needs a model built with grafts=True")
        sr_convs = getattr(teacher, "sr_convs", None)
        if sr_convs is None:
            raise ValueError(f"teacher {type(teacher).__name__} has no sr_convs() to graft from")
        if getattr(teacher, "scale", self.scale) != self.scale:
            raise ValueError(f"teacher scale {teacher.scale} != ckbg scale {self.scale}")
        tconvs: list[nn.Conv2d] = list(sr_convs())
        first, hidden, last = tconvs[0], tconvs[1:-1], tconvs[-1]
        notes: list[str] = []
        targets: list[tuple[nn.Module, nn.Conv2d | None, slice]] = [(self.head, first, slice(0, 3))]
        for i, blk in enumerate(self.body):
            targets.append((blk, hidden[i] if i < len(hidden) else None, slice(None)))
        targets.append((self.tail, last, slice(None)))
        for blk, tconv, in_slice in targets:
            g = _branch_conv(blk, "graft")
            g.weight.zero_()
            assert g.bias is not None
            g.bias.zero_()
            if tconv is None:  # deeper than the teacher: an identity graft keeps its features
                n = min(g.weight.shape[0], g.weight.shape[1])
                g.weight[
                    torch.arange(n), torch.arange(n), g.kernel_size[0] // 2, g.kernel_size[1] // 2
                ] = 1
                continue
            w = _fit_kernel(tconv.weight.to(g.weight), g.weight.shape[-1])
            if tconv.weight.shape[-1] > g.weight.shape[-1]:
                notes.append(f"cropped a {tconv.weight.shape[-1]}x{tconv.weight.shape[-1]} kernel")
            o = min(w.shape[0], g.weight.shape[0])
            dst = g.weight[:, in_slice]
            i = min(w.shape[1], dst.shape[1])
            dst[:o, :i] = w[:o, :i]
            if tconv.bias is not None:
                g.bias[:o] = tconv.bias.to(g.bias)[:o]
            if o < max(w.shape[0], g.weight.shape[0]) or i < max(w.shape[1], dst.shape[1]):
                notes.append("teacher and graft widths differ: overlapping channels copied")
        for blk in self._convs():  # main branches start small: the net starts as the teacher
            for m in cast(RepConv, blk).branches["main"].modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.mul_(self.main_init_scale)
        teacher_residual = getattr(teacher, "residual", True)
        if not teacher_residual:
            notes.append("teacher has no bicubic skip; ckbg adds one")
        self.graft_source = {
            "source": source,
            "teacher": type(teacher).__name__,
            "teacher_convs": len(tconvs),
            "notes": sorted(set(notes)),
        }
        return self.graft_source

    def reparameterize(self) -> nn.Module:
        """The single-path network: every multi-branch block merged into one conv (eval mode)."""
        merged = cast(CKBG, reparameterize_modules(self))
        merged.grafted = False
        return merged.eval()


def _branch_conv(block: nn.Module, branch: str) -> nn.Conv2d:
    """The convolution of ``branch`` of a multi-branch block (a :class:`RepConv`)."""
    conv = cast(RepConv, block).branches[branch].conv
    assert isinstance(conv, nn.Conv2d)
    return conv


def _teacher_from(
    upstream: Mapping[str, nn.Module] | None, teacher: str | None, teacher_weights: str | None
) -> tuple[nn.Module, str]:
    if teacher_weights:
        from energybench.models.sr.espcn import espcn_from_state_dict

        path = Path(teacher_weights).expanduser()
        if not path.is_file():
            raise ValueError(f"teacher_weights: no such file {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, no code
        return espcn_from_state_dict(state), str(path)
    upstream = dict(upstream or {})
    if teacher is not None:
        if teacher not in upstream:
            raise ValueError(
                f"teacher {teacher!r} is not among this entry's uses: {list(upstream)}"
            )
        return upstream[teacher], f"entry:{teacher}"
    if len(upstream) != 1:
        raise ValueError(
            "ckbg with grafts needs a teacher: list exactly one entry in 'uses', name it with "
            "params.teacher, or give params.teacher_weights (a state_dict file)"
        )
    name, model = next(iter(upstream.items()))
    return model, f"entry:{name}"


def ckbg(
    channels: int = 24,
    blocks: int = 2,
    scale: int = 4,
    grafts: bool = False,
    graft_kernel: int = 3,
    main_init_scale: float = 0.1,
    teacher: str | None = None,
    teacher_weights: str | None = None,
    upstream: Mapping[str, nn.Module] | None = None,
) -> CKBG:
    """CKBG online VSR. ``grafts=True`` grafts kernels of a pretrained image SR teacher (an entry
    in ``uses``, or ``teacher_weights``) beside every conv; ``grafts=False`` is the base network."""
    model = CKBG(channels, blocks, scale, grafts, graft_kernel, main_init_scale)
    if grafts:
        t, source = _teacher_from(upstream, teacher, teacher_weights)
        model.graft_from(t.float().cpu(), source)
    return model
