"""Every compressed model survives the run store's checkpoint (save, load, same frames).

``--resume`` reloads ``compress.pt`` to serve and evaluate; a model that does not unpickle
would make a finished compress phase unusable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from energybench.lifecycle.compress import apply_method, param_count
from energybench.models.sr.ckbg import CKBG
from energybench.store import atomic_torch_save
from energybench.suite.schema import Prune, Quantize, Reparameterize

STEPS = {
    "int8": [Quantize(method="quantize", dtype="int8", calibration_batches=2)],
    "merged+pruned": [
        Reparameterize(method="reparameterize"),
        Prune(method="prune", kind="structured", amount=0.5),
    ],
    "merged+pruned+int8": [
        Reparameterize(method="reparameterize"),
        Prune(method="prune", kind="structured", amount=0.25),
        Quantize(method="quantize", dtype="int8", calibration_batches=2),
    ],
}


@pytest.mark.parametrize("name", list(STEPS))
def test_compressed_ckbg_round_trips(name: str, ctx, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CKBG(channels=8, blocks=1, grafts=True).eval()
    for step in STEPS[name]:
        model, _ = apply_method(step, model, ctx)
    path = tmp_path / "compress.pt"
    atomic_torch_save(model, path)
    loaded = torch.load(path, weights_only=False).eval()
    clip = torch.rand(1, 3, 3, 12, 12)
    with torch.inference_mode():
        assert torch.equal(model.forward_clip(clip), loaded.forward_clip(clip))
    assert param_count(loaded) == param_count(model) > 0
