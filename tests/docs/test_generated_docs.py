"""The reference pages generated from the code (docs/generate.py) are the committed ones."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("page", ["suite-fields.md", "cli.md"])
def test_committed_page_is_what_the_code_generates(page: str) -> None:
    made = _generator().PAGES[page]()
    assert (DOCS / page).read_text() == made, (
        f"docs/{page} is out of date: run `python docs/generate.py` and commit it"
    )


def test_the_suite_fields_page_lists_every_field_the_schema_has() -> None:
    from energybench.suite.schema import Suite, TrainSettings

    text = (DOCS / "suite-fields.md").read_text()
    for model in (Suite, TrainSettings):
        for name in model.model_fields:
            assert f"| `{name}` |" in text
    assert "### Stream: `stream`" in text and "### Prune: `prune`" in text
    assert 'int \\| `"auto"`' in text  # train.batch_size's two forms


def test_the_cli_page_documents_every_command() -> None:
    from energybench.cli import app

    text = (DOCS / "cli.md").read_text()
    for cmd in app.registered_commands:
        name = cmd.name or (cmd.callback.__name__ if cmd.callback else "")
        assert f"## `energybench {name}`" in text
