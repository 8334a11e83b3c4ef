"""Pruning: structured (channels physically removed) and unstructured (weights zeroed).

Structured pruning removes whole output channels of hidden convolutions, ranked by the L1 (or
L2) norm of their filters, and the matching input channels of the next convolution, so the
result is a genuinely smaller dense network. It prunes only *safe pairs*: a conv ``A`` whose
output reaches exactly one conv ``B`` and nothing else, through channel-wise ops only
(activations, BatchNorm, PReLU, depthwise convs - which shrink with ``A``, as in the
expand -> depthwise -> project blocks of MobileNets). Inside residual blocks (ResNet's
conv1 -> conv2) the hidden width is pruned; the widths added to a skip connection are not.
Channels feeding a pixel shuffle, an addition, a concatenation, the model output or a
recurrent state are never touched, so every tensor whose width matters outside the pair keeps
it. Pairs are discovered by tracing the model with
``torch.fx`` (one ``step`` for temporal models, with its state as inputs; modules that contain
no conv are traced as opaque leaves), or given by the model itself through an optional
``prunable_pairs() -> list[tuple[str, str]]`` hook (qualified names of directly connected
producer and consumer convs, with only parameter-free ops between them).

Torch-Pruning (``torch-pruning``) was tried first: it handles feed-forward models, but on a
recurrent model it silently produced a broken network (the conv computing the next state was
left with its old input width), because one traced forward cannot see the state feedback loop.

Unstructured pruning zeroes the smallest-magnitude conv/linear weights with
``torch.nn.utils.prune`` (per layer or global), keeps the mask during optional fine-tuning and
then makes it permanent. The tensors stay dense: no speed-up is expected on dense hardware.

Nothing here measures energy; the compress phase's window wraps the call.
"""

from __future__ import annotations

import copy
import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune as tprune
from torch.utils._pytree import tree_flatten, tree_unflatten

from energybench.compress.common import CompressContext, finetune
from energybench.models.sr.base import online

# ----------------------------------------------------------------------------- tracing helpers


def contains_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


class StepModule(nn.Module):
    """``model`` as a traceable module: ``forward(lr, *state_leaves)`` runs one ``step``
    (temporal models, returns ``(sr, new_state)``) or ``model(lr)`` (per-frame models)."""

    def __init__(self, model: nn.Module, state_spec: Any | None, n_leaves: int) -> None:
        super().__init__()
        self.model = model
        self.state_spec = state_spec
        self.n_leaves = n_leaves

    def forward(self, lr: torch.Tensor, *state: Any) -> Any:
        if self.state_spec is None:
            return self.model(lr)
        leaves = [state[i] for i in range(self.n_leaves)]
        return online(self.model).step(lr, tree_unflatten(leaves, self.state_spec))


def step_module(model: nn.Module, lr: torch.Tensor) -> tuple[StepModule, tuple[Any, ...]]:
    """The :class:`StepModule` of ``model`` and example inputs for it built from ``lr``."""
    if getattr(model, "temporal", False) and hasattr(model, "step"):
        leaves, spec = tree_flatten(online(model).init_state(lr))
        return StepModule(model, spec, len(leaves)), (lr, *leaves)
    return StepModule(model, None, 0), (lr,)


class ConvTracer(fx.Tracer):
    """Traces into modules that contain convs; everything else is an opaque leaf."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return (
            isinstance(m, nn.Conv2d)
            or not contains_conv(m)
            or super().is_leaf_module(m, module_qualified_name)
        )


def trace(model: nn.Module) -> fx.Graph:
    """The FX graph of one step of ``model`` (module targets are prefixed with ``model.``)."""
    wrapper = StepModule(model, None, 0)
    if getattr(model, "temporal", False) and hasattr(model, "step"):
        lr = torch.zeros(1, 3, 8, 8)
        p = next(model.parameters(), None)
        if p is not None:
            lr = lr.to(p.device, p.dtype)
        wrapper, _ = step_module(model, lr)
    return ConvTracer().trace(wrapper)


# ----------------------------------------------------------------------------- safe pairs

_ACT_FUNCS: set[Any] = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.elu, F.hardswish,
    torch.sigmoid, torch.tanh, F.sigmoid, F.tanh, operator.neg,
}  # fmt: skip
_ACT_METHODS = {"relu", "sigmoid", "tanh", "relu_", "sigmoid_", "tanh_"}
_ACT_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardswish, nn.Sigmoid,
    nn.Tanh, nn.Identity, nn.Dropout, nn.Dropout2d,
)  # fmt: skip


@dataclass
class PrunePair:
    """Producer conv, consumer conv, and the channel-wise modules between them to shrink too."""

    producer: str
    consumer: str
    between: list[str] = field(default_factory=list)


def _depthwise(m: nn.Module) -> TypeGuard[nn.Conv2d]:
    """A depthwise conv (one filter per channel): channel-wise, prunable with its input."""
    return type(m) is nn.Conv2d and m.groups == m.in_channels == m.out_channels and m.groups > 1


def _only_node_arg_first(node: fx.Node, src: fx.Node) -> bool:
    rest = list(node.args[1:]) + list(node.kwargs.values())
    return bool(node.args) and node.args[0] is src and not any(isinstance(a, fx.Node) for a in rest)


def _trace_for_pruning(model: nn.Module) -> fx.Graph:
    """``model``'s torch.fx graph; ``ValueError`` saying what to do instead when it cannot be
    traced."""
    try:
        return trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure gets one clear message
        raise ValueError(
            f"structured pruning could not trace {type(model).__name__} with torch.fx ({exc}); "
            "give the model a prunable_pairs() method listing (producer, consumer) conv names, "
            "or use kind: unstructured"
        ) from exc


def find_prunable_pairs(model: nn.Module) -> list[PrunePair]:
    """Safe (producer, consumer) conv pairs of ``model`` (its own hook if it has one)."""
    hook = getattr(model, "prunable_pairs", None)
    if callable(hook):
        return [PrunePair(a, b) for a, b in hook()]
    graph = _trace_for_pruning(model)
    mods = dict(model.named_modules())

    def module(node: fx.Node) -> nn.Module | None:
        if node.op != "call_module" or not str(node.target).startswith("model."):
            return None
        return mods.get(str(node.target)[len("model.") :])

    calls = Counter(str(n.target) for n in graph.nodes if n.op == "call_module")

    def plain_conv(node: fx.Node) -> bool:
        m = module(node)
        return (
            isinstance(m, nn.Conv2d)
            and type(m) is nn.Conv2d
            and m.groups == 1
            and calls[str(node.target)] == 1
        )

    pairs = []
    for node in graph.nodes:
        conv = module(node)
        if not plain_conv(node) or not isinstance(conv, nn.Conv2d) or conv.out_channels < 2:
            continue
        cur = node
        between: list[str] = []
        while len(cur.users) == 1:
            user = next(iter(cur.users))
            m = module(user)
            if plain_conv(user) and user.args == (cur,) and not user.kwargs:
                pairs.append(PrunePair(str(node.target)[6:], str(user.target)[6:], between))
                break
            if user.op == "call_function" and user.target in _ACT_FUNCS:
                ok = _only_node_arg_first(user, cur)
            elif user.op == "call_method" and user.target in _ACT_METHODS:
                ok = _only_node_arg_first(user, cur)
            elif m is not None and isinstance(m, _ACT_MODULES) and user.args == (cur,):
                ok = True  # parameter-free: may be called elsewhere too (torchvision ResNet)
            elif m is not None and calls[str(user.target)] == 1 and user.args == (cur,):
                if _depthwise(m):
                    ok = True  # one filter per channel: shrinks with the producer
                    between.append(str(user.target)[6:])
                elif isinstance(m, nn.BatchNorm2d | nn.PReLU):
                    ok = True
                    if not isinstance(m, nn.PReLU) or m.num_parameters > 1:
                        between.append(str(user.target)[6:])
                else:
                    ok = False
            else:
                ok = False
            if not ok:
                break
            cur = user
    return pairs


# ----------------------------------------------------------------------------- structured


def filter_importance(conv: nn.Conv2d, criterion: str) -> torch.Tensor:
    """One score per output channel: the L1 (``l1``/``magnitude``) or L2 norm of its filter."""
    w = conv.weight.detach().flatten(1).float()
    return w.norm(p=2, dim=1) if criterion == "l2" else w.abs().sum(dim=1)


def _select(t: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    return t.detach().index_select(dim, idx.to(t.device)).clone()


@torch.no_grad()
def _shrink_out(conv: nn.Conv2d, idx: torch.Tensor) -> None:
    conv.weight = nn.Parameter(_select(conv.weight, idx, 0))
    if conv.bias is not None:
        conv.bias = nn.Parameter(_select(conv.bias, idx, 0))
    conv.out_channels = len(idx)


@torch.no_grad()
def _shrink_in(conv: nn.Conv2d, idx: torch.Tensor) -> None:
    conv.weight = nn.Parameter(_select(conv.weight, idx, 1))
    conv.in_channels = len(idx)


@torch.no_grad()
def _shrink_channelwise(m: nn.Module, idx: torch.Tensor) -> None:
    if isinstance(m, nn.BatchNorm2d):
        for name in ("weight", "bias"):
            p = getattr(m, name)
            if p is not None:
                setattr(m, name, nn.Parameter(_select(p, idx, 0)))
        for name in ("running_mean", "running_var"):
            b = getattr(m, name)
            if b is not None:
                setattr(m, name, _select(b, idx, 0))
        m.num_features = len(idx)
    elif isinstance(m, nn.PReLU):
        m.weight = nn.Parameter(_select(m.weight, idx, 0))
        m.num_parameters = len(idx)
    elif _depthwise(m):
        _shrink_out(m, idx)
        m.in_channels = m.groups = len(idx)
    else:
        raise ValueError(f"cannot prune channels of {type(m).__name__}")


def structured_prune(
    model: nn.Module, amount: float, criterion: str = "l1"
) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of ``model`` with ``amount`` of the output channels of every safe hidden conv
    removed (lowest filter norms first, at least one kept), and the next conv shrunk to match."""
    pruned = copy.deepcopy(model)
    pairs = find_prunable_pairs(pruned)
    if not pairs:
        raise ValueError(
            f"{type(model).__name__} has no safely prunable conv pair (a hidden conv feeding "
            "exactly one next conv); structured pruning would change nothing"
        )
    mods = dict(pruned.named_modules())
    plan = []
    for pair in pairs:  # rank on the original weights before any layer changes
        a = mods[pair.producer]
        n = a.out_channels
        keep = max(1, n - int(round(amount * n)))
        idx = torch.topk(filter_importance(a, criterion), keep).indices.sort().values
        plan.append((pair, idx, n))
    layers = {}
    for pair, idx, n in plan:
        _shrink_out(mods[pair.producer], idx)
        for name in pair.between:
            _shrink_channelwise(mods[name], idx)
        _shrink_in(mods[pair.consumer], idx)
        layers[pair.producer] = {
            "consumer": pair.consumer,
            "between": list(pair.between),
            "channels": [n, len(idx)],
        }
    return pruned, {
        "kind": "structured",
        "criterion": criterion,
        "pairs": layers,
        "channels_removed": sum(n - len(idx) for _, idx, n in plan),
        "speedup_expected": True,
    }


def replay_structured_prune(model: nn.Module, pairs: list[dict[str, Any]]) -> nn.Module:
    """``model`` with the layer widths of a structured pruning (``{"producer", "consumer",
    "between", "channels"}`` per pair, ``channels`` kept): the first channels are kept, since
    the weights are loaded from a checkpoint afterwards. Used to rebuild a saved pruned model."""
    mods = dict(model.named_modules())
    for pair in pairs:
        names = [pair["producer"], pair["consumer"], *pair.get("between", [])]
        missing = [n for n in names if n not in mods]
        if missing:
            raise ValueError(f"pruned layers {missing} are not in {type(model).__name__}")
        if not all(isinstance(mods[pair[k]], nn.Conv2d) for k in ("producer", "consumer")):
            raise ValueError(f"pruned pair {pair['producer']} -> {pair['consumer']} is not convs")
        idx = torch.arange(int(pair["channels"]))
        _shrink_out(mods[pair["producer"]], idx)
        for name in pair.get("between", []):
            _shrink_channelwise(mods[name], idx)
        _shrink_in(mods[pair["consumer"]], idx)
    return model


# ----------------------------------------------------------------------------- unstructured


def _prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [
        (m, "weight")
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and isinstance(m.weight, nn.Parameter)
    ]


def _weight_sparsity(targets: list[tuple[nn.Module, str]]) -> float:
    total = sum(getattr(m, n).numel() for m, n in targets)
    zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in targets)
    return zeros / total if total else 0.0


def unstructured_prune(
    model: nn.Module,
    amount: float,
    scope: str = "layer",
    tune: Callable[[nn.Module], dict[str, Any]] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Zero the ``amount`` smallest-magnitude conv/linear weights (per layer or globally),
    optionally fine-tune with the mask in place (``tune``), then make the zeros permanent."""
    pruned = copy.deepcopy(model)
    targets = _prunable_weights(pruned)
    if not targets:
        raise ValueError(f"{type(model).__name__} has no conv or linear weights to prune")
    if scope == "global":
        tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=amount)
    else:
        for m, n in targets:
            tprune.l1_unstructured(m, n, amount=amount)
    info: dict[str, Any] = tune(pruned) if tune else {}  # masks re-applied on every forward
    for m, n in targets:
        tprune.remove(m, n)
    return pruned, {
        "kind": "unstructured",
        "scope": scope,
        "weight_sparsity": _weight_sparsity(targets),
        "speedup_expected": False,
        "note": "zeros are stored densely; no speed-up or size reduction on dense hardware",
        **info,
    }


# ----------------------------------------------------------------------------- entry point


def prune_model(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    """The ``prune`` compress method (see module docstring); fine-tuning inside the window."""
    if step.kind == "unstructured":
        out, info = unstructured_prune(
            model,
            step.amount,
            getattr(step, "scope", "layer"),
            tune=lambda m: finetune(m, step.finetune, ctx),
        )
    else:
        out, info = structured_prune(model, step.amount, step.criterion)
        info.update(finetune(out, step.finetune, ctx))
    out.to(ctx.device).eval()
    return out, info


def prune_recipe(step: Any, info: dict[str, Any], out: nn.Module) -> dict[str, Any] | None:
    """The checkpoint recipe step of a prune: the channels kept (unstructured: none, zeros only
    keep every shape)."""
    if info.get("kind") != "structured":
        return None
    pairs = [
        {
            "producer": producer,
            "consumer": p["consumer"],
            "between": list(p.get("between", [])),
            "channels": int(p["channels"][1]),
        }
        for producer, p in info["pairs"].items()
    ]
    return {"op": "prune", "kind": "structured", "pairs": pairs}


def prune_check(step: Any, model: nn.Module, model_name: str) -> str | None:
    """Why a structured prune cannot work on ``model`` (None when it can, or unstructured)."""
    if step.kind != "structured":
        return None
    try:
        pairs = find_prunable_pairs(model)
    except ValueError as exc:
        return str(exc)
    if pairs:
        return None
    return (
        f"structured pruning cannot handle model '{model_name}': it has no safely prunable conv "
        "pair (a hidden conv feeding exactly one next conv through channel-wise ops; "
        "multi-branch blocks such as RepVGG's sum their branches). Reparameterize first, or use "
        "kind: unstructured"
    )
