"""Every classifier family the classification suites name builds, trains one step and infers on
the CPU; re-parameterised RepVGG/MobileOne/FastViT compute what their multi-branch form does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from energybench.models import MODELS
from energybench.models.vision.classifiers import replace_first_conv
from energybench.models.vision.reparam import has_reparam_blocks, reparameterize_blocks
from energybench.plugins.registry import UnknownNameError

SUITES = sorted((Path(__file__).parents[2] / "suites").glob("classification*.yaml"))
SMALL = {"channels": 1, "size_px": 32, "num_classes": 10}


def suite_models() -> list[str]:
    names: set[str] = set()
    for path in SUITES:
        data = yaml.safe_load(path.read_text())
        for e in data["entries"]:
            names.add(e["model"]["name"])
            for step in e.get("compress", []):
                if "student" in step:
                    names.add(step["student"]["name"])
    return sorted(names)


def test_the_suites_name_every_family_the_issue_asks_for() -> None:
    names = suite_models()
    assert len(SUITES) == 3 and len(names) >= 10
    for want in ("tv:resnet18", "timm:repvgg_a0", "timm:mobileone_s0", "timm:ghostnet_050"):
        assert want in names


@pytest.mark.parametrize("name", suite_models())
def test_builds_trains_one_step_and_infers_on_cpu(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS.create(name, data=SMALL)
    x, y = torch.rand(4, 1, 32, 32), torch.tensor([3, 7, 0, 9])
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    out = model(x)
    out = out[0] if isinstance(out, tuple) else out
    F.cross_entropy(out, y).backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    _calibrate_bn(model, (4, 1, 32, 32), torch.float32)
    with torch.inference_mode():
        logits = model(x)
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()


def _calibrate_bn(
    model: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float64
) -> None:
    """Give every BatchNorm realistic running statistics, so eval outputs are not degenerate."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(*shape, dtype=dtype))
    model.eval()


@pytest.mark.parametrize(
    "name",
    [n for n in suite_models() if n.split(":")[-1].startswith(("repvgg", "mobileone", "fastvit"))],
)
def test_reparameterised_outputs_equal_multi_branch_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS.create(name, data=SMALL).double()
    assert has_reparam_blocks(model)
    _calibrate_bn(model, (4, 1, 32, 32))
    merged = reparameterize_blocks(model)
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        a, b = model(x), merged(x)
    n_before = sum(p.numel() for p in model.parameters())
    n_after = sum(p.numel() for p in merged.parameters())
    assert n_after < n_before  # branches really merged
    assert float(a.abs().max()) > 1e-3  # a non-trivial output
    assert float((a - b).abs().max()) <= 1e-5


def test_torchvision_first_conv_reads_the_datasets_channels() -> None:
    model = MODELS.create("tv:resnet18", data=SMALL)
    assert model.conv1.in_channels == 1 and model.fc.out_features == 10
    assert replace_first_conv(torch.nn.Linear(2, 2), 1) is None
    model = MODELS.create(
        "timm:ghostnet_050", data={"channels": 3, "size_px": 32, "num_classes": 5}
    )
    assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'tv:resnet18'"):
        MODELS.get("tv:resnet19")
    with pytest.raises(UnknownNameError, match="'timm:mobilenetv3_small_050'"):
        MODELS.get("timm:mobilenetv3_small_05")
    with pytest.raises(UnknownNameError, match="did you mean 'timm:resnet18' or 'tv:resnet18'"):
        MODELS.get("resnet18")
    assert "tv:resnet18" in MODELS and "tv:resnet19" not in MODELS


def test_weights_file_loads_and_a_missing_one_is_a_user_error(tmp_path: Path) -> None:
    a = MODELS.create("timm:lcnet_050", data=SMALL)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    b = MODELS.create("timm:lcnet_050", data=SMALL, weights=str(tmp_path / "w.pt"))
    assert all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="not found"):
        MODELS.create("timm:lcnet_050", data=SMALL, weights=str(tmp_path / "none.pt"))
