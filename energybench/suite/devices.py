"""Which device an entry may run on, decided from the suite alone, before any work.

Some methods only run on the CPU: PyTorch's FX int8 (``compress: quantize int8``, x86/fbgemm
kernels), ONNX Runtime's static QDQ int8 unless TensorRT runs it, ONNX Runtime with only the
CPU execution provider, and OpenVINO (its "GPU" plugin is an Intel GPU, never an NVIDIA one).

Rule (the same on every host, so ``validate`` on a laptop says what a GPU server will do):

- ``device: auto`` on such an entry means the CPU. It is re-placed there with a visible note
  (``validate`` and ``run`` print it; the manifest's placement label says ``cpu``), instead of
  resolving to a GPU and failing after training and pruning have run;
- an explicit ``device: cuda`` / ``cuda:N`` on such an entry is refused at load (exit 2): the
  user asked for a GPU the method cannot use.

A CPU entry on a GPU host is charged for no GPU: its windows record every GPU they see with
``charged: false`` (idle power is not the CPU model's cost; see
:meth:`energybench.meters.base.EnergyMonitor.charging`), so a pair that mixes a CPU entry and a
GPU entry compares CPU (+ host) energy with GPU energy; tables mark such pairs and rankings
(:func:`mixed_devices`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from energybench.suite.methods import Quantize
from energybench.suite.schema import Entry

#: ONNX Runtime execution providers that run on an NVIDIA GPU.
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def cpu_only_reason(e: Entry) -> str | None:
    """Why entry ``e`` can only run on the CPU (a phrase), or None when a GPU can run it."""
    for step in e.compress:
        if isinstance(step, Quantize) and step.dtype == "int8":
            return "FX int8 (compress: quantize int8) runs on PyTorch's CPU kernels only"
    spec = e.backend
    if spec.name == "eager" and spec.quantize == "int8":
        return "PyTorch int8 serving (backend.quantize: int8 on eager) runs on oneDNN's CPU kernels"
    if spec.name == "openvino":
        return "OpenVINO runs on the CPU here (its GPU plugin is for Intel GPUs, not NVIDIA)"
    if spec.name == "onnxruntime":
        providers = spec.providers or []
        if spec.quantize == "int8" and "TensorrtExecutionProvider" not in providers:
            return (
                "ONNX Runtime's QDQ int8 runs as int8 only on the CPU execution provider "
                "(list TensorrtExecutionProvider in backend.providers for GPU int8)"
            )
        if spec.providers and not any(p in GPU_PROVIDERS for p in providers):
            return f"backend.providers ({', '.join(providers)}) has no GPU execution provider"
    return None


def effective_device(e: Entry) -> str:
    """The device name ``e`` runs on: ``cpu`` for a CPU-only entry on ``auto``, else its own."""
    if e.device == "auto" and cpu_only_reason(e) is not None:
        return "cpu"
    return e.device


def device_problem(e: Entry) -> str | None:
    """The refusal for a CPU-only entry given an explicit GPU (``device: cuda[:N]``), or None."""
    why = cpu_only_reason(e)
    if why is None or not e.device.startswith("cuda"):
        return None
    return (
        f"device '{e.device}' cannot run this entry: {why}; set device: cpu (or auto, which "
        "places it on the CPU)"
    )


def variant_problem(host: Entry, variant: Entry) -> str | None:
    """The refusal for an adaptive scenario of ``host`` switching to a CPU-only ``variant``
    while ``host`` (whose device serves every variant) may be on a GPU, or None."""
    why = cpu_only_reason(variant)
    if why is None or effective_device(host) == "cpu":
        return None
    return (
        f"adaptive variant '{variant.name}' runs on the CPU only ({why}), but the variants are "
        f"served on this entry's device ('{host.device}'); set device: cpu on this entry"
    )


def placement_notes(entries: Iterable[Entry]) -> dict[str, str]:
    """entry -> note for each entry re-placed from ``auto`` to the CPU (printed by validate/run)."""
    out = {}
    for e in entries:
        why = cpu_only_reason(e)
        if e.device == "auto" and why is not None:
            out[e.name] = f"device auto -> cpu: {why}"
    return out


def mixed_devices(names: Iterable[str], kinds: Mapping[str, str]) -> bool:
    """True when the entries ``names`` ran on different kinds of device (``kinds``: entry ->
    ``cpu`` / ``cuda``; entries without a kind are ignored)."""
    seen = {kinds[n] for n in names if n in kinds}
    return len(seen) > 1


def device_kind(label: str) -> str:
    """``cpu`` or ``cuda`` for a placement label (``cpu``, ``cuda:1``, ``simulated-h100:0``)."""
    return "cpu" if label == "cpu" or label.startswith("cpu") else "cuda"
