"""Model checkpoints without pickled code: a plain state dict plus a JSON recipe to rebuild it.

A checkpoint ``<name>.pt`` is ``torch.save`` of a plain ``dict`` of tensors (the module's
``state_dict()``, nothing else); beside it, ``<name>.recipe.json`` says how to rebuild the module
those tensors belong to (also summarised in the README, "Where results go")::

    {"format": "energybench-checkpoint", "version": 1,
     "model": {"name": "ckbg", "params": {...}},   # the suite's model spec (MODELS registry)
     "uses": ["teacher"],                           # upstream entries the factory was given
     "steps": [{"op": "reparameterize"}, ...],      # structural changes, in order
     "state_file": "compress.pt", "state_sha256": "...",
     "quantized_attrs": {"tensors": [...], "numbers": {...}}}

Steps: ``{"op": "reparameterize"}``; ``{"op": "prune", "kind": "structured", "pairs":
[{"producer", "consumer", "between", "channels"}]}`` (unstructured pruning changes no shape and
adds no step); ``{"op": "cast", "dtype": "fp16"|"bf16"}``; ``{"op": "quantize_int8", "graph":
"fx"|"eager-per-conv", "example_shape": [...]}``; ``{"op": "distill", "student": {"name",
"params"}}``. ``quantized_attrs`` lists what some int8 modules keep outside ``state_dict()``
(e.g. a quantised PReLU's weight, scale and zero point): those tensors are in the ``.pt`` too
under ``"<module>.<attr>"``, the numbers are in the recipe.

Loading builds the model from the registry (upstream models through a resolver), replays the
steps (merge branches; shrink pruned layers to their saved widths; cast; rebuild the int8 graph
the way :mod:`energybench.compress.quantize` does; swap in a distilled student), then loads the
tensors with ``torch.load(weights_only=True)`` and ``load_state_dict(strict=True)``. A file that
is not plain tensors is refused before any of its objects exist, so a crafted run folder cannot
run code. The recipe travels with a live model (:func:`recipe_of`) from the moment it is built;
every compress method extends it (:func:`compress_step`).

This module must not know the run directory layout (the caller resolves paths), measure
energy, or unpickle anything but tensors.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from energybench.errors import UserError

FORMAT = "energybench-checkpoint"
VERSION = 1
RECIPE_SUFFIX = ".recipe.json"
_ATTR = "_energybench_recipe"

#: resolves an upstream entry name (``uses``) to the path of its trained checkpoint
Resolver = Callable[[str], Path]


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded safely or does not match its recipe (user-facing)."""


@dataclass(frozen=True)
class Recipe:
    """How to rebuild a model: registry spec, upstream entries, structural steps (JSON-able)."""

    model: dict[str, Any]
    uses: tuple[str, ...] = ()
    steps: tuple[dict[str, Any], ...] = ()

    def then(self, step: dict[str, Any] | None) -> Recipe:
        """This recipe with one more structural step (None: the step changed no structure)."""
        return self if step is None else Recipe(self.model, self.uses, (*self.steps, step))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "uses": list(self.uses),
            "steps": list(self.steps),
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> Recipe:
        ok = (
            isinstance(data, dict)
            and data.get("format") == FORMAT
            and isinstance(data.get("model"), dict)
            and isinstance(data["model"].get("name"), str)
            and isinstance(data["model"].get("params", {}), dict)
            and isinstance(data.get("uses", []), list)
            and all(isinstance(u, str) for u in data.get("uses", []))
            and isinstance(data.get("steps", []), list)
            and all(
                isinstance(s, dict) and isinstance(s.get("op"), str) for s in data.get("steps", [])
            )
        )
        if not ok:
            raise CheckpointError(
                f"{where} is not an energybench checkpoint recipe (expected format '{FORMAT}' "
                "with model, uses and steps); delete the checkpoint or start a new run "
                "(drop --resume)"
            )
        if data.get("version") != VERSION:
            raise CheckpointError(
                f"{where} has checkpoint format version {data.get('version')}, this energybench "
                f"reads version {VERSION}; start a new run (drop --resume) or use the "
                "energybench version that wrote it"
            )
        model = {"name": data["model"]["name"], "params": dict(data["model"].get("params", {}))}
        return cls(model, tuple(data.get("uses", [])), tuple(data.get("steps", [])))


# --------------------------------------------------------------------------- recipe of a model
def recipe_of(model: nn.Module) -> Recipe | None:
    """The recipe attached to ``model`` (None for a module built outside the lifecycle)."""
    return model.__dict__.get(_ATTR)


def attach_recipe(model: nn.Module, recipe: Recipe | None) -> nn.Module:
    """Attach ``recipe`` to ``model`` (returned, for chaining)."""
    model.__dict__[_ATTR] = recipe
    return model


def compress_step(settings: Any, info: Mapping[str, Any], out: nn.Module) -> dict[str, Any] | None:
    """The structural step a compress method made (None if it changed no module structure).

    ``settings`` is the suite's compress step, ``info`` what the method reported, ``out`` the
    model it returned; the method's registered ``recipe`` hook says (none: weights only).
    """
    from energybench.suite.methods import COMPRESS_METHODS

    recipe = COMPRESS_METHODS.hook(settings.method, "recipe")
    return None if recipe is None else recipe(settings, info, out)


# --------------------------------------------------------------------------- building
def build_model(
    model_spec: Mapping[str, Any],
    uses: tuple[str, ...] | list[str],
    upstream: Callable[[str], nn.Module] | None = None,
) -> nn.Module:
    """The model ``model_spec`` (``{"name", "params"}``) from the MODELS registry, on the CPU,
    its recipe attached. A factory that takes ``upstream`` gets ``{u: upstream(u)}`` for ``uses``.
    """
    from energybench.models import MODELS

    spec = {"name": model_spec["name"], "params": dict(model_spec.get("params", {}))}
    factory = MODELS.get(spec["name"])
    params = dict(spec["params"])
    if "upstream" in inspect.signature(factory).parameters:
        if upstream is None and uses:
            raise ValueError(f"model '{spec['name']}' needs its upstream entries {list(uses)}")
        params["upstream"] = {u: upstream(u) for u in uses} if upstream else {}
    return attach_recipe(factory(**params), Recipe(spec, tuple(uses)))


def _replay(model: nn.Module, step: dict[str, Any]) -> nn.Module:
    """Apply the structure (not the weights) of one recorded compress step to ``model``."""
    op = step["op"]
    if op == "reparameterize":
        from energybench.compress.common import merge_branches

        return merge_branches(model)[0]
    if op == "prune":
        from energybench.compress.prune import replay_structured_prune

        return replay_structured_prune(model, step["pairs"])
    if op == "cast":
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[step["dtype"]]
        return model.to(dtype=dtype)
    if op == "quantize_int8":
        from energybench.compress.quantize import rebuild_int8

        shape = step.get("example_shape")
        return rebuild_int8(model, step["graph"], tuple(shape) if shape else None)
    if op == "distill":
        from energybench.models import MODELS

        student = step["student"]
        return MODELS.create(student["name"], **dict(student.get("params", {})))
    raise ValueError(f"unknown step '{op}'")


def _params_problem(recipe: Recipe) -> str | None:
    """Why the models ``recipe`` builds (its model, a distilled student) have parameters a
    suite could not have (``channels: 2**31`` would allocate without end), or None."""
    from energybench.models import MODELS
    from energybench.plugins.registry import UnknownNameError
    from energybench.suite.params import param_problems

    specs = [recipe.model] + [
        s["student"] for s in recipe.steps if s.get("op") == "distill" and "student" in s
    ]
    for spec in specs:
        if not (isinstance(spec, dict) and isinstance(spec.get("params", {}), dict)):
            return "a model must be an object with a name and params"
        try:
            found = param_problems(MODELS, str(spec.get("name")), dict(spec.get("params", {})))
        except UnknownNameError as exc:
            return str(exc)
        if found:
            return found[0][1]
    return None


def rebuild(recipe: Recipe, upstream: Callable[[str], nn.Module] | None = None) -> nn.Module:
    """The architecture ``recipe`` describes, with freshly initialised weights, on the CPU."""
    model = build_model(recipe.model, recipe.uses, upstream)
    for step in recipe.steps:
        model = _replay(model.eval(), step)
    return attach_recipe(model, recipe)


# --------------------------------------------------------------------------- quantised extras
def _loose_state(
    model: nn.Module, state_keys: set[str]
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, float | int]]]:
    """What quantised modules keep as plain attributes instead of in ``state_dict()``.

    Some ``torch.ao`` quantised modules (e.g. ``PReLU``: weight, scale, zero point; ``ELU``,
    ``Sigmoid``: output scale and zero point) hold their state in attributes that
    ``state_dict()`` does not save. Returns those tensors (``"module.attr"``) and numbers.
    """
    tensors: dict[str, torch.Tensor] = {}
    numbers: dict[str, dict[str, float | int]] = {}
    for name, m in model.named_modules():
        if not type(m).__module__.startswith("torch.ao.nn."):
            continue
        for attr, value in vars(m).items():
            key = f"{name}.{attr}" if name else attr
            if attr.startswith("_") or key in state_keys:
                continue
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach()
            elif (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and ("scale" in attr or "zero_point" in attr)
            ):
                numbers.setdefault(name, {})[attr] = value
    return tensors, numbers


def _restore_loose(
    model: nn.Module, tensors: dict[str, torch.Tensor], numbers: Mapping[str, Any]
) -> None:
    """Set the attributes :func:`_loose_state` saved; each must exist with the same kind."""
    expected_t, expected_n = _loose_state(model, set(model.state_dict()))
    if set(tensors) != set(expected_t) or {k: set(v) for k, v in numbers.items()} != {
        k: set(v) for k, v in expected_n.items()
    }:
        raise ValueError("the quantised module attributes saved do not match the rebuilt model")
    for key, value in tensors.items():
        mod, _, attr = key.rpartition(".")
        old = expected_t[key]
        if value.shape != old.shape or value.dtype != old.dtype:
            raise ValueError(f"{key}: saved {tuple(value.shape)} {value.dtype}, model {old.dtype}")
        setattr(model.get_submodule(mod), attr, value)
    for mod, attrs in numbers.items():
        for attr, value in attrs.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{mod}.{attr}: not a number")
            kind = type(expected_n[mod][attr])
            setattr(model.get_submodule(mod), attr, kind(value))


# --------------------------------------------------------------------------- save and load
def _dtypes(names: Mapping[str, Any]) -> dict[str, torch.dtype]:
    """Recorded dtype entries of a state dict ("qint8" -> ``torch.qint8``); names only."""
    out = {}
    for key, name in names.items():
        dtype = getattr(torch, str(name), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"state entry '{key}': '{name}' is not a torch dtype")
        out[key] = dtype
    return out


def recipe_path(path: Path) -> Path:
    """The recipe file beside checkpoint ``path`` (``train.pt`` -> ``train.recipe.json``)."""
    return path.with_name(path.stem + RECIPE_SUFFIX)


def save_checkpoint(model: nn.Module, path: Path) -> dict[str, str]:
    """Write ``model``'s tensors to ``path`` and its recipe beside it (each atomically).

    Returns ``{"file", "sha256"}`` of the tensors file, for the phase record that vouches for it
    (``--resume`` redoes a phase whose checkpoint no longer matches).

    Raises ``ValueError`` for a model without a recipe or with non-tensor state (programmer
    errors: every lifecycle model is built by :func:`build_model` or a compress method).
    """
    from energybench.records.store import atomic_write_bytes, atomic_write_json

    recipe = recipe_of(model)
    if recipe is None:
        raise ValueError(f"{type(model).__name__} has no checkpoint recipe attached")
    state: dict[str, torch.Tensor] = {}
    dtypes: dict[str, str] = {}  # e.g. a quantised Linear's packed-params dtype: plain text
    tuples: dict[str, list[bool]] = {}  # tuples of tensors: which items are present
    for key, value in model.state_dict().items():
        if isinstance(value, torch.dtype):
            dtypes[key] = str(value).removeprefix("torch.")
            continue
        if isinstance(value, tuple) and all(
            v is None or isinstance(v, torch.Tensor) for v in value
        ):
            tuples[key] = [v is not None for v in value]  # a quantised Linear's (weight, bias)
            state.update({f"{key}#{i}": v.detach() for i, v in enumerate(value) if v is not None})
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"state of {type(model).__name__} has a non-tensor entry '{key}'")
        state[key] = value.detach()
    loose, numbers = _loose_state(model, set(state))
    state.update(loose)
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = buf.getvalue()
    atomic_write_bytes(path, blob)
    digest = hashlib.sha256(blob).hexdigest()
    atomic_write_json(
        recipe_path(path),
        {
            **recipe.to_json(),
            "state_file": path.name,
            "state_sha256": digest,
            "quantized_attrs": {"tensors": sorted(loose), "numbers": numbers},
            "state_dtypes": dtypes,
            "state_tuples": tuples,
        },
    )
    return {"file": path.name, "sha256": digest}


def read_state_dict(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of checkpoint ``path``, loaded with ``weights_only=True`` (never pickled code).

    Raises :class:`CheckpointError` for a file that is unreadable, altered (hash mismatch), or
    not a plain ``{name: tensor}`` dict.
    """
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if expected_sha256 is not None and hashlib.sha256(blob).hexdigest() != expected_sha256:
        raise CheckpointError(
            f"checkpoint {path} does not match the hash in its recipe: it was changed or "
            "replaced after it was written; start a new run (drop --resume)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage notices for quantised tensors
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - weights_only refusals come as several types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a plain state dict of tensors, so it was not loaded "
            f"({first[:200]}); energybench never unpickles objects from a run folder because "
            "that can run arbitrary code. If you did not write this file, do not trust this "
            "run folder; otherwise start a new run (drop --resume)"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"checkpoint {path} holds {type(state).__name__}, not a {{name: tensor}} state "
            "dict; start a new run (drop --resume)"
        )
    return state


class CheckpointLoader:
    """Loads checkpoints; ``resolve(entry)`` gives the trained checkpoint of an upstream entry.

    Upstream models (a teacher a factory needs to build its architecture) are loaded the same
    safe way, once each; a recipe that leads back to itself is refused.
    """

    def __init__(self, resolve: Resolver | None = None) -> None:
        self.resolve = resolve
        self._upstream: dict[str, nn.Module] = {}
        self._loading: list[Path] = []

    def _upstream_model(self, name: str) -> nn.Module:
        if self.resolve is None:
            raise CheckpointError(f"the recipe needs upstream entry '{name}', which is unknown")
        if name not in self._upstream:
            self._upstream[name] = self.load(self.resolve(name), torch.device("cpu"))
        return self._upstream[name]

    def load(self, path: Path, device: torch.device | str = "cpu") -> nn.Module:
        """The model saved at ``path`` by :func:`save_checkpoint`, on ``device``, in eval mode."""
        path = Path(path)
        rpath = recipe_path(path)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint {path}; start a new run (drop --resume)")
        if not rpath.is_file():
            raise CheckpointError(
                f"checkpoint {path} has no recipe {rpath.name} beside it: it was written by an "
                "energybench that pickled whole models, which is no longer loaded because "
                "unpickling a file can run arbitrary code; start a new run (drop --resume)"
            )
        resolved = path.resolve()
        if resolved in self._loading:
            chain = " -> ".join(str(p) for p in [*self._loading, resolved])
            raise CheckpointError(f"checkpoint recipes depend on each other in a cycle: {chain}")
        try:
            data = json.loads(rpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read checkpoint recipe {rpath}: {exc}") from None
        recipe = Recipe.from_json(data, str(rpath))
        bad = _params_problem(recipe)
        if bad is not None:  # checked before anything is built: a model's size is its params'
            raise CheckpointError(
                f"checkpoint recipe {rpath}: {bad}, which no suite can ask for (edited by "
                "hand?); start a new run (drop --resume)"
            )
        if not isinstance(data.get("state_sha256"), str):
            raise CheckpointError(
                f"checkpoint recipe {rpath} has no state_sha256, so it cannot vouch for "
                f"{path.name}; start a new run (drop --resume)"
            )
        self._loading.append(resolved)
        try:
            state: dict[str, Any] = read_state_dict(path, data.get("state_sha256"))
            try:
                model = rebuild(recipe, self._upstream_model)
                extras = data.get("quantized_attrs") or {}
                loose = {k: state.pop(k) for k in extras.get("tensors", []) if k in state}
                state.update(_dtypes(data.get("state_dtypes") or {}))
                for key, present in (data.get("state_tuples") or {}).items():
                    state[key] = tuple(
                        state.pop(f"{key}#{i}") if there else None
                        for i, there in enumerate(present)
                    )
                # state_dict()'s per-module versions (``_metadata``) are not saved: take the
                # rebuilt model's, else a quantised Linear reads its state as version 1
                ordered: OrderedDict[str, Any] = OrderedDict(state)
                ordered._metadata = getattr(model.state_dict(), "_metadata", None)  # type: ignore[attr-defined]
                model.load_state_dict(ordered, strict=True)
                _restore_loose(model, loose, extras.get("numbers", {}))
            except CheckpointError:
                raise
            except Exception as exc:  # noqa: BLE001 - any mismatch: one clear message
                raise CheckpointError(
                    f"checkpoint {path} does not fit the model its recipe describes "
                    f"({type(exc).__name__}: {str(exc)[:300]}); start a new run (drop --resume)"
                ) from None
        finally:
            self._loading.pop()
        return attach_recipe(model.to(device).eval(), recipe)


def load_checkpoint(
    path: Path, device: torch.device | str = "cpu", resolve: Resolver | None = None
) -> nn.Module:
    """The model saved at ``path`` (see :class:`CheckpointLoader`)."""
    return CheckpointLoader(resolve).load(path, device)
