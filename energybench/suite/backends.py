"""The table of serving backends an entry may name (``backend.name``), and the checks of an
entry against it.

A :class:`Backend` declares what a runtime can serve (PyTorch modules, recurrent state, a one-off
export step) and how to prepare a model: a lazy ``"module:attr"`` that
:mod:`energybench.serve.backends.core` resolves when it serves. The suite schema checks names
and capabilities here (:func:`backend_problems`) without importing the serving runtime or torch.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from energybench.plugins.registry import Registry, resolve
from energybench.suite.methods import Quantize
from energybench.suite.schema import BackendSpec, Entry

#: ``prepare(model, spec: BackendSpec, ctx: PrepareContext) -> (served model, record)``
Prepare = Callable[..., tuple[Any, dict[str, Any]]]


def _available() -> str | None:
    return None


@dataclass(frozen=True)
class Backend:
    """A serving runtime. ``prepare``: a function or a lazy ``"module:attr"``;
    ``torch_module``: serves the PyTorch module itself (so it runs int8 FX graphs and fp16/bf16
    casts); ``recurrent``: can carry an online model's state; ``one_off``: has an
    export/compile step (metered, counted in TEC); ``unavailable``: why it cannot run here."""

    name: str
    prepare: Prepare | str
    description: str
    torch_module: bool = False
    recurrent: bool = True
    one_off: bool = True
    unavailable: Callable[[], str | None] = _available

    def prepared(self, model: Any, spec: BackendSpec, ctx: Any) -> tuple[Any, dict[str, Any]]:
        """The served model and its record (``prepare`` imported now when lazy)."""
        fn: Prepare = resolve(self.prepare)
        return fn(model, spec, ctx)


BACKENDS: Registry[Backend] = Registry("backend", Backend)


def register(backend: Backend) -> Backend:
    """Add a backend to :data:`BACKENDS` (a name registered twice is an error, as in every
    other registry: a plug-in cannot silently replace a built-in runtime)."""
    BACKENDS.register(backend)
    return backend


def _missing(module: str, install: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"'{module}' is not installed ({install})"
        return None

    return check


_CORE = "energybench.serve.backends.core"
register(
    Backend("eager", f"{_CORE}:prepare_eager", "PyTorch eager", torch_module=True, one_off=False)
)
register(Backend("compile", f"{_CORE}:prepare_compile", "torch.compile", torch_module=True))
register(
    Backend(
        "onnxruntime",
        f"{_CORE}:prepare_onnxruntime",
        "ONNX Runtime on a torch.onnx export",
        unavailable=_missing(
            "onnxruntime", "pip install onnxruntime, or for GPUs: pip install 'energybench[gpu]'"
        ),
    )
)
register(
    Backend(
        "openvino",
        f"{_CORE}:prepare_openvino",
        "OpenVINO on a torch.onnx export",
        unavailable=_missing("openvino", "pip install 'energybench[openvino]'"),
    )
)

Found = list[tuple[tuple[str, ...], str]]  # (field path within the entry, message)

#: What this host's hardware refuses of an entry's serving precision (CPU matrix units): the
#: serving runtime answers it, reached by name when an entry is checked, like a registry entry
HARDWARE = "energybench.serve.backends.lowp:hardware_problems"


def step_dtypes(e: Entry) -> list[str]:
    """The dtypes ``e``'s quantize steps cast to."""
    return [s.dtype for s in e.compress if s.method == "quantize" and isinstance(s, Quantize)]


def model_class(e: Entry) -> type | None:
    """The class the entry's model factory returns (from its annotation), when it says."""
    import typing

    from energybench.models import MODELS

    try:
        hints = typing.get_type_hints(MODELS.get(e.model.name))
    except Exception:  # noqa: BLE001 - unknown names are reported elsewhere
        return None
    cls = hints.get("return")
    return cls if isinstance(cls, type) else None


def _provider_problems(spec: BackendSpec) -> Found:
    """ONNX Runtime execution providers that are not installed here (GPU providers are checked
    against the host where the entry lands on a GPU: run preflight, validate)."""
    import onnxruntime as ort

    from energybench.suite.devices import GPU_PROVIDERS

    have = ort.get_available_providers()
    out: Found = []
    for k, p in enumerate(spec.providers or []):
        if p not in have and p not in GPU_PROVIDERS:
            close = difflib.get_close_matches(p, [*have, *GPU_PROVIDERS], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            out.append(
                (
                    ("backend", "providers", str(k)),
                    f"onnxruntime execution provider '{p}' is not installed here{hint} "
                    f"(available: {', '.join(have)})",
                )
            )
    return out


def _model_problems(e: Entry, backend: Backend) -> Found:
    """What the backend cannot run of the entry's model: recurrent state, FX int8 graphs,
    fp16/bf16 casts, autocast on an export or on top of a cast."""
    spec, name = e.backend, e.backend.name
    out: Found = []
    cls = model_class(e)
    if not backend.recurrent and cls is not None and getattr(cls, "temporal", False):
        out.append(
            (
                ("backend", "name"),
                f"backend '{name}' cannot carry the recurrent state of "
                f"model '{e.model.name}' across frames; serve it on eager, compile or "
                "onnxruntime",
            )
        )
    dtypes = step_dtypes(e)
    if not backend.torch_module and "int8" in dtypes:
        out.append(
            (
                ("backend", "name"),
                f"backend '{name}' cannot run PyTorch's FX int8 graph "
                "(compress quantize int8); drop that step and set backend.quantize: int8 for "
                "ONNX Runtime's static QDQ int8",
            )
        )
    if not backend.torch_module and {"fp16", "bf16"} & set(dtypes):
        out.append(
            (
                ("backend", "name"),
                f"backend '{name}' serves the fp32 export; remove the "
                "fp16/bf16 cast (quantize dtype fp16/bf16) or serve on eager",
            )
        )
    if spec.autocast != "none" and not backend.torch_module:
        out.append(
            (
                ("backend", "autocast"),
                f"backend '{name}' serves the fp32 export; autocast applies to eager and compile",
            )
        )
    if spec.autocast != "none" and dtypes:
        out.append(
            (
                ("backend", "autocast"),
                "autocast runs an fp32 model in lower precision; "
                "the entry is already cast or quantised (quantize dtype "
                f"{dtypes[0]}): drop one of the two",
            )
        )
    if spec.quantize != "none" and name not in ("onnxruntime", "eager"):
        out.append(
            (
                ("backend", "quantize"),
                f"backend.quantize: {spec.quantize} needs "
                "onnxruntime (QDQ) or eager (FX int8 on oneDNN)",
            )
        )
    return out + _reduced_precision_problems(e, dtypes)


def _reduced_precision_problems(e: Entry, dtypes: list[str]) -> Found:
    """``dtype: bf16`` and eager int8: where they apply, and (by name, from the serving
    runtime: :data:`HARDWARE`) the CPU units they need."""
    spec = e.backend
    out: Found = []
    if spec.dtype != "fp32":
        if spec.name not in ("eager", "compile"):
            out.append(
                (
                    ("backend", "dtype"),
                    f"backend.dtype: {spec.dtype} applies to eager "
                    f"and compile (backend '{spec.name}' serves the fp32 export)",
                )
            )
        if spec.autocast != "none" or spec.quantize != "none" or dtypes:
            out.append(
                (
                    ("backend", "dtype"),
                    f"backend.dtype: {spec.dtype} casts an fp32 "
                    "model; drop autocast, backend.quantize or the compress quantize step",
                )
            )
    if spec.quantize == "int8" and spec.name == "eager" and (dtypes or spec.channels_last):
        out.append(
            (
                ("backend", "quantize"),
                "eager int8 quantises the fp32 model itself; drop "
                "the compress quantize step and channels_last",
            )
        )
    hardware: Callable[[Entry], Found] = resolve(HARDWARE)
    return out + hardware(e)


def _scenario_problems(e: Entry, backend: Backend) -> Found:
    """Serving scenarios the backend cannot serve as declared."""
    name = e.backend.name
    out: Found = []
    for k, sc in enumerate(e.serve):
        if sc.compile != "none" and name != "eager":
            out.append(
                (
                    ("serve", str(k), "compile"),
                    f"scenario 'compile: {sc.compile}' only "
                    f"applies to the eager backend; with backend '{name}' remove it (use "
                    f"backend: {{name: compile, compile_mode: {sc.compile}}} for "
                    "torch.compile)",
                )
            )
        batched = sc.scenario == "load" or max(getattr(sc, "batch_sizes", [1])) > 1
        if batched and not e.backend.dynamic_batch and not backend.torch_module:
            out.append(
                (
                    ("backend", "dynamic_batch"),
                    f"scenario '{sc.name or sc.scenario}' "
                    "serves batches of more than one, but the export has a fixed batch of "
                    "1 (dynamic_batch: false)",
                )
            )
        if sc.scenario == "adaptive" and not e.backend.is_default():
            out.append(
                (
                    ("backend",),
                    "an adaptive scenario serves its variants on their own "
                    "backends; give the backend to the variant entries instead",
                )
            )
    return out


def backend_problems(e: Entry) -> Found:
    """(field path within the entry, message) for each reason ``e.backend`` cannot serve ``e``:
    unknown or uninstalled backend, a recurrent model on a backend without state, a compressed
    form the runtime cannot run, conflicting serve options."""
    spec = e.backend
    if spec.name not in BACKENDS:
        close = difflib.get_close_matches(spec.name, BACKENDS.ordered(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        known = ", ".join(BACKENDS.ordered())
        return [(("backend", "name"), f"unknown backend '{spec.name}'{hint} (known: {known})")]
    backend = BACKENDS.get(spec.name)
    out: Found = []
    why = backend.unavailable()
    if why:
        out.append((("backend", "name"), f"backend '{spec.name}' is unavailable here: {why}"))
    if spec.providers and spec.name == "onnxruntime" and not why:
        out += _provider_problems(spec)
    return out + _model_problems(e, backend) + _scenario_problems(e, backend)
