"""Which NVML devices a run uses: ``CUDA_VISIBLE_DEVICES`` / torch positions -> GPUs.

Maps torch (CUDA) positions to NVML devices (indices, UUIDs, UUID prefixes, MIG ids) in the
order CUDA numbers them, and marks MIG instances. It only reads the environment and NVML
identities; it must not measure anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from energybench.meters.nvml_device import GpuBackend, GpuDevice, GpuError


class GpuSelectionError(GpuError):
    """The GPUs the run uses cannot be mapped to NVML devices; ``str()`` says why."""


@dataclass
class GpuTarget:
    """A GPU the run uses: the NVML device, its torch position and notes for every record."""

    device: GpuDevice
    cuda_position: int | None = None
    mig_id: str | None = None
    issues: list[str] = field(default_factory=list)
    mig: bool = False  # MIG mode on: the GPU's energy is shared by every instance on it


def _norm_uuid(u: str) -> str:
    u = u.strip().lower()
    return u[4:] if u.startswith("gpu-") else u


def visible_gpus(
    env: str | None, backend: GpuBackend, order: str | None = None
) -> tuple[list[tuple[GpuDevice, str | None]], list[str]]:
    """Map ``CUDA_VISIBLE_DEVICES`` to NVML devices, in CUDA (torch) order.

    Entries may be NVML indices, GPU UUIDs or unique UUID prefixes (with or without ``GPU-``)
    and MIG ids (``MIG-<uuid>`` or ``MIG-GPU-<uuid>/<gi>/<ci>``; mapped to their parent GPU).
    As in CUDA, the list stops at the first invalid entry; ``""`` means no GPU; unset means all.
    Returns ``[(device, mig_id or None), ...]`` and notes.
    """
    gpus = backend.devices()
    notes: list[str] = []
    if env is None:
        if len(gpus) > 1 and (order or "").upper() != "PCI_BUS_ID":
            notes.append(
                "CUDA_VISIBLE_DEVICES is unset and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may "
                "number GPUs fastest-first while NVML uses PCI order; set "
                "CUDA_DEVICE_ORDER=PCI_BUS_ID to be sure the right GPUs are measured"
            )
        return [(g, None) for g in gpus], notes
    by_uuid = {_norm_uuid(g.uuid()): g for g in gpus}
    out: list[tuple[GpuDevice, str | None]] = []
    seen: set[str] = set()
    for tok in (t.strip() for t in env.split(",")):
        dev: GpuDevice | None = None
        mig: str | None = None
        if re.fullmatch(r"-?\d+", tok):
            i = int(tok)
            dev = gpus[i] if 0 <= i < len(gpus) else None
        elif tok.lower().startswith("mig-"):
            mig = tok
            m = re.fullmatch(r"(?i)mig-(gpu-[0-9a-f-]+)/\d+/\d+", tok)
            parent = m.group(1) if m else backend.mig_parent_uuid(tok)
            dev = by_uuid.get(_norm_uuid(parent)) if parent else None
        elif tok:
            hits = [g for u, g in by_uuid.items() if u.startswith(_norm_uuid(tok))]
            dev = hits[0] if len(hits) == 1 else None
        if dev is None or (mig is None and dev.uuid() in seen):
            if tok:
                notes.append(
                    f"CUDA_VISIBLE_DEVICES entry '{tok}' matches no single GPU: CUDA ignores it "
                    "and every entry after it"
                )
            break
        seen.add(dev.uuid())
        out.append((dev, mig))
    return out, notes


def select_gpus(
    backend: GpuBackend,
    cuda_devices: Sequence[int] | None,
    env: str | None = None,
    torch_uuids: Sequence[str] | None = None,
    order: str | None = None,
) -> list[GpuTarget]:
    """The NVML devices behind torch devices ``cuda_devices`` (positions in CUDA's list).

    ``env`` is ``CUDA_VISIBLE_DEVICES`` (read from the environment when not given; pass ``""``
    explicitly for "no GPU"). ``torch_uuids`` (``torch.cuda.get_device_properties(i).uuid`` per
    position) wins over the environment when given, since it is what CUDA actually opened.
    ``cuda_devices=None`` selects every visible GPU. Each physical GPU appears once; MIG
    instances are reported as their parent GPU with a warning in ``issues``.
    Raises :class:`GpuSelectionError` when a position has no GPU.
    """
    if env is None:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if order is None:
        order = os.environ.get("CUDA_DEVICE_ORDER")
    visible, notes = visible_gpus(env, backend, order)
    by_uuid = {_norm_uuid(g.uuid()): g for g in backend.devices()}
    positions = list(range(len(visible))) if cuda_devices is None else list(cuda_devices)
    targets: dict[str, GpuTarget] = {}
    for pos in positions:
        dev: GpuDevice | None = None
        mig: str | None = None
        if torch_uuids is not None and 0 <= pos < len(torch_uuids):
            u = _norm_uuid(str(torch_uuids[pos]))
            dev = by_uuid.get(u)
            if dev is None:
                mig = u if u.startswith("mig-") else f"MIG-{u}"
                parent = backend.mig_parent_uuid(mig)
                dev = by_uuid.get(_norm_uuid(parent)) if parent else None
                mig = mig if dev is not None else None
        if dev is None:
            if not 0 <= pos < len(visible):
                raise GpuSelectionError(
                    f"cuda:{pos} is used but only {len(visible)} GPU(s) are visible "
                    f"(CUDA_VISIBLE_DEVICES={env!r}; NVML sees {len(backend.devices())}). "
                    + " ".join(notes)
                )
            dev, mig = visible[pos]
        uuid = dev.uuid()
        tgt = targets.get(uuid)
        if tgt is None:
            tgt = targets[uuid] = GpuTarget(dev, cuda_position=pos, issues=list(notes))
        if mig is not None or dev.mig_enabled():
            tgt.mig_id = mig
            tgt.mig = True
            warn = (
                f"MIG instance {mig or '(MIG mode on)'}: NVML reports energy for the whole "
                f"parent GPU {uuid}, shared with every other instance on it"
            )
            if warn not in tgt.issues:
                tgt.issues.append(warn)
    return list(targets.values())


def run_pids() -> set[int]:
    """This process and its children (their GPU work is the run's own)."""
    pids = {os.getpid()}
    try:
        import psutil

        pids.update(c.pid for c in psutil.Process().children(recursive=True))
    except Exception:  # noqa: BLE001 - psutil missing or a child vanished: own pid only
        pass
    return pids
