"""The one manifest builder: stamps, the creation time kept across rewrites, the resume count;
and no other module builds a manifest of its own."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from energybench.records.store import STORE_VERSION
from energybench.run.manifest import build_manifest
from energybench.suite.schema import SCHEMA_VERSION, Suite
from energybench.version import __version__

PACKAGE = Path(__file__).resolve().parents[2] / "energybench"
SUITE = Suite.model_validate(
    {"name": "m", "entries": [{"name": "a", "model": {"name": "bicubic"},
                               "dataset": {"name": "photos"}}]}
)  # fmt: skip


def _manifest(old: dict[str, Any], finished: bool, **kw: Any) -> dict[str, Any]:
    return build_manifest(
        old, SUITE, suite_file="s.yaml", config_hash="h", phase_hashes={}, environment={},
        meters=[], finished=finished, failed={}, cooldowns={}, simulate=None, placements={},
        **kw,
    )  # fmt: skip


def test_stamps_creation_time_and_resume_count() -> None:
    first = _manifest({}, finished=False)
    assert (first["schema_version"], first["store_version"]) == (SCHEMA_VERSION, STORE_VERSION)
    assert first["energybench_version"] == __version__ and first["resumes"] == 0
    assert first["suite"]["name"] == "m"
    again = _manifest({**first, "created_unix_s": 1.0}, finished=False)
    assert again["created_unix_s"] == 1.0 and again["resumes"] == 1
    assert again["updated_unix_s"] > 1.0
    done = _manifest(again, finished=True)
    assert done["resumes"] == 1 and done["finished"] is True  # finishing is not a resume
    api = _manifest({}, finished=True, resumes=0, source="python-api")
    assert api["source"] == "python-api" and api["resumes"] == 0


def test_no_other_module_builds_a_manifest() -> None:
    """Every writer (runner, executors, api.Run) goes through :func:`build_manifest`: no other
    module spells the manifest's version stamp as a dict key."""
    builders = []
    for f in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "energybench_version" for k in node.keys
            ):
                builders.append(str(f.relative_to(PACKAGE)))
    assert builders == ["run/manifest.py"]
