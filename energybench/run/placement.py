"""Where each entry runs: the torch device, and the GPUs its energy is charged for (real, or a
simulated profile's while the model runs on the CPU)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from energybench.errors import SetupError
from energybench.suite.devices import effective_device
from energybench.suite.schema import Suite


def resolve_device(name: str) -> torch.device:
    """'auto' -> the first CUDA GPU if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SetupError(f"device '{name}' requested but no CUDA GPU is available")
    return dev


@dataclass(frozen=True)
class Placement:
    """Where an entry runs: the torch device, and the GPUs (torch positions) it is charged for.

    With ``--simulate`` the model runs on the CPU while a simulated GPU is measured: ``device``
    is the CPU and ``gpus`` the simulated GPU's position. ``label`` names the device set in the
    phase hashes (so ``--resume``/``--only`` never mix device sets silently).
    """

    device: torch.device
    gpus: frozenset[int]
    label: str


def place(name: str, simulate: str | None = None, simulated_gpus: int = 0) -> Placement:
    """The :class:`Placement` of an entry whose suite says ``device: name``."""
    if simulate:
        if name == "cpu":
            return Placement(torch.device("cpu"), frozenset(), "cpu")
        index = 0 if name in ("auto", "cuda") else torch.device(name).index or 0
        if torch.device("cuda" if name == "auto" else name).type != "cuda":
            raise SetupError(f"device '{name}' cannot be simulated (use auto, cpu or cuda:N)")
        if index >= simulated_gpus:
            raise SetupError(
                f"device '{name}' is not in simulated profile '{simulate}' "
                f"({simulated_gpus} GPU(s))"
            )
        return Placement(torch.device("cpu"), frozenset({index}), f"simulated-{simulate}:{index}")
    dev = resolve_device(name)
    if dev.type != "cuda":
        return Placement(dev, frozenset(), dev.type)
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    # the index spelled out: the runner makes it the current device for the entry's phases
    return Placement(torch.device("cuda", index), frozenset({index}), f"cuda:{index}")


def placements(suite: Suite, simulate: str | None = None) -> dict[str, Placement]:
    """Every entry's :class:`Placement` (``ValueError`` for a device that cannot be used); a
    CPU-only entry on ``device: auto`` is placed on the CPU (:mod:`energybench.suite.devices`)."""
    count = 0
    if simulate:
        from energybench.meters.sim.profiles import simulated_gpu_count

        count = simulated_gpu_count(simulate)
    out = {}
    for e in suite.entries:
        try:
            out[e.name] = place(effective_device(e), simulate, count)
        except (ValueError, RuntimeError) as exc:  # torch.device() parse errors too
            raise SetupError(f"entry '{e.name}': {exc}") from None
    return out
