"""The training-loop callbacks record a train phase (energy, steps, samples) for a tiny model on
the CPU; each test skips cleanly where its framework is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import energybench

FAST = {"sample_period_s": 0.02, "min_window_s": 0.0}


def _train_record(run_dir: Path) -> object:
    train = energybench.load_run(run_dir).entry("tiny").train
    assert train is not None and train.done and train.measurement is not None
    assert train.measurement.energy_j is not None and train.measurement.energy_j > 0
    return train


def test_the_hugging_face_callback_records_the_train_phase(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from energybench.integrations.huggingface import EnergyCallback

    config = transformers.BertConfig(
        vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
        intermediate_size=8, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    data = [{"input_ids": torch.randint(0, 32, (8,)), "labels": torch.tensor(i % 2)}
            for i in range(16)]  # fmt: skip
    run = energybench.Run(tmp_path / "run", suite="hf", entry="tiny", energy=FAST)
    callback = EnergyCallback(run)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=2,
        report_to=[], save_strategy="no", use_cpu=True, logging_steps=1, disable_tqdm=True,
    )  # fmt: skip
    transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    train = _train_record(tmp_path / "run")
    assert train.train is not None and train.train.steps == 3  # type: ignore[attr-defined]
    assert train.train.model_extra["samples"] == 6  # type: ignore[attr-defined]
    assert train.train.final_loss is not None  # type: ignore[attr-defined]
    assert callback.measurement is not None


def test_a_hugging_face_training_that_raises_is_aborted_into_a_failed_phase(
    tmp_path: Path,
) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from energybench.integrations.huggingface import EnergyCallback

    class Broken(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    run = energybench.Run(tmp_path / "run", suite="hf", entry="tiny", energy=FAST)
    callback = EnergyCallback(run)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2,
        report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    data = [{"x": torch.ones(2)} for _ in range(4)]
    trainer = transformers.Trainer(model=Broken(), args=args, train_dataset=data,
                                   callbacks=[callback])  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        try:
            trainer.train()
        except BaseException as exc:
            callback.abort(exc)
            raise
    train = energybench.load_run(tmp_path / "run").entry("tiny").train
    assert train is not None and train.status == "failed" and "boom" in (train.error or "")
    assert callback.measurement is not None and not callback.window._stack  # closed


def test_the_lightning_callback_records_the_train_phase(tmp_path: Path) -> None:
    L = pytest.importorskip("lightning.pytorch")
    from energybench.integrations.lightning import EnergyCallback

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(20, 4), torch.randn(20, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=5)
    run = energybench.Run(tmp_path / "run", suite="pl", entry="tiny", energy=FAST)
    trainer = L.Trainer(
        max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=str(tmp_path), callbacks=[EnergyCallback(run)],
    )  # fmt: skip
    trainer.fit(Tiny(), loader)
    train = _train_record(tmp_path / "run")
    assert train.train.steps == 3  # type: ignore[attr-defined]
    assert train.train.model_extra["samples"] == 15  # type: ignore[attr-defined]


def test_a_lightning_loop_that_raises_records_a_failed_phase(tmp_path: Path) -> None:
    L = pytest.importorskip("lightning.pytorch")
    from energybench.integrations.lightning import EnergyCallback

    class Broken(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: object, _: int) -> torch.Tensor:
            raise RuntimeError("boom")

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(10, 4))
    run = energybench.Run(tmp_path / "run", suite="pl", entry="tiny", energy=FAST)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, callbacks=[EnergyCallback(run)])  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(Broken(), torch.utils.data.DataLoader(data, batch_size=5))
    train = energybench.load_run(tmp_path / "run").entry("tiny").train
    assert train is not None and train.status == "failed" and "boom" in (train.error or "")
    assert train.measurement is not None  # the window closed; its energy is not a finished phase
