"""Pretrained weights from local files and local caches only, pinned by sha256.

A model entry may start from published weights (``model.weights`` in a suite)::

    weights: {path: weights/espcn.safetensors, sha256: <64 hex>}
    weights: {hf: org/repo, revision: <commit>, file: model.safetensors, sha256: <64 hex>}
    weights: {torchvision: IMAGENET1K_V1, sha256: <64 hex>}      # for tv:<name> models

Nothing is downloaded at run time: a Hugging Face file is looked up in the local hub cache
(``huggingface_hub.try_to_load_from_cache``, offline), a torchvision file in torch's hub cache
(``torch.hub.get_dir()/checkpoints``). A missing file or a wrong hash is a :class:`WeightsError`
(exit 2) saying how to fetch it, raised at ``validate`` and before any work. Files are loaded as
safetensors or as a plain state dict with ``weights_only=True`` (never pickled code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from energybench.errors import UserError
from energybench.records.store import file_sha256


class WeightsError(UserError, ValueError):
    """Declared weights that are absent from their local cache, altered, or do not fit."""


def weights_file(spec: Any, model_name: str, base: Path | None = None) -> Path:
    """The local file ``spec`` (a :class:`~energybench.suite.base.WeightsSpec`) names;
    :class:`WeightsError` with the command to fetch it when it is not there."""
    if spec.path is not None:
        path = Path(spec.path).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist (or is not a regular file)")
        return path
    if spec.hf is not None:
        return _hf_file(spec)
    return _torchvision_file(spec, model_name)


def _hf_file(spec: Any) -> Path:
    fetch = (
        f"fetch it once with network access: `hf download {spec.hf} {spec.file} "
        f"--revision {spec.revision}`"
    )
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        raise WeightsError(
            f"weights {spec.hf}/{spec.file} need huggingface_hub (pip install huggingface_hub)"
        ) from None
    found = try_to_load_from_cache(spec.hf, spec.file, revision=spec.revision)
    if not isinstance(found, str) or not Path(found).is_file():
        raise WeightsError(
            f"weights {spec.hf}/{spec.file} at revision {spec.revision} are not in the local "
            f"Hugging Face cache (energybench never downloads at run time); {fetch}"
        )
    return Path(found)


def _torchvision_file(spec: Any, model_name: str) -> Path:
    import torch

    if not model_name.startswith("tv:"):
        raise WeightsError(
            f"weights: {{torchvision: {spec.torchvision}}} needs a 'tv:<name>' model, not "
            f"'{model_name}'"
        )
    arch = model_name.removeprefix("tv:")
    try:
        from torchvision.models import get_model_weights

        url = get_model_weights(arch)[spec.torchvision].url
    except (KeyError, ValueError) as exc:
        raise WeightsError(
            f"torchvision has no weights '{spec.torchvision}' for '{arch}' ({exc})"
        ) from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise WeightsError(
            f"torchvision weights {arch}/{spec.torchvision} are not in torch's local cache "
            f"({path}; energybench never downloads at run time); fetch them once with network "
            f'access: `python -c "import torchvision; torchvision.models.get_model({arch!r}, '
            f'weights={spec.torchvision!r})"`'
        )
    return path


def check_weights(spec: Any, model_name: str, base: Path | None = None) -> Path:
    """The file, after checking it is there and has the pinned hash (:class:`WeightsError`)."""
    path = weights_file(spec, model_name, base)
    digest = file_sha256(path)
    if digest != spec.sha256:
        raise WeightsError(
            f"weights {path} have sha256 {digest}, not the pinned {spec.sha256}: the file "
            "changed or is another one; pin the hash of the file you mean to use"
        )
    return path


def read_weights(path: Path, sha256: str) -> dict[str, Any]:
    """The tensors of a safetensors file or a plain state dict (``weights_only=True``), read
    once and checked against ``sha256`` (the bytes loaded are the bytes pinned)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load

        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise WeightsError(f"cannot read weights {path}: {exc}") from None
        if _sha256_of(blob) != sha256:
            raise WeightsError(f"weights {path} changed after their hash was checked")
        try:
            return dict(load(blob))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise WeightsError(f"weights {path} are not a valid safetensors file ({exc})") from None
    from energybench.run.checkpoint import CheckpointError, read_state_dict

    try:
        return read_state_dict(path, sha256)
    except CheckpointError:
        raise WeightsError(
            f"weights {path} were not loaded: they must be a safetensors file or a plain "
            "state dict of tensors, read with torch.load(weights_only=True) (pickled objects "
            "are never loaded: they can run code), and keep their pinned hash"
        ) from None


def _sha256_of(blob: bytes) -> str:
    """sha256 of bytes already read (as :func:`~energybench.records.store.file_sha256`)."""
    import hashlib

    return hashlib.sha256(blob).hexdigest()


def load_weights(
    model: Any, spec: Any, model_name: str, base: Path | None = None
) -> dict[str, Any]:
    """Load the declared weights into ``model`` (in place); returns what the record keeps."""
    path = check_weights(spec, model_name, base)
    state = read_weights(path, spec.sha256)
    own = model.state_dict()
    # with strict: false, tensors whose shape differs (a new classifier head) are left as built
    skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if skipped and spec.strict:
        raise WeightsError(
            f"weights {path} do not fit model '{model_name}': {len(skipped)} tensor(s) differ "
            f"in shape (first: {skipped[0]} {tuple(state[skipped[0]].shape)} vs "
            f"{tuple(own[skipped[0]].shape)}); set weights.strict: false to fine-tune a new head"
        )
    try:
        result = model.load_state_dict(
            {k: v for k, v in state.items() if k not in skipped}, strict=spec.strict
        )
    except RuntimeError as exc:
        first = " ".join(str(exc).splitlines()[:3])
        raise WeightsError(f"weights {path} do not fit model '{model_name}' ({first})") from None
    return {
        "file": str(path),
        "sha256": spec.sha256,
        "missing_keys": list(result.missing_keys)[:20],
        "unexpected_keys": list(result.unexpected_keys)[:20],
        "skipped_keys": skipped[:20],
    }
