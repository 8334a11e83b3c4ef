"""``--set key.path=value`` overrides and the ``defaults`` merge of a suite (see
:mod:`energybench.suite.load`); problems are :class:`SuiteError` pointing at the ``--set``."""

from __future__ import annotations

import copy
import difflib
from typing import Any

import yaml

from energybench.suite.errors import Problem, SuiteError
from energybench.suite.yamlsafe import MAX_BYTES, MAX_DEPTH, YamlLimitError, load_bounded


def apply_override(data: dict[str, Any], assignment: str) -> str:
    """Apply ``key.path=value`` in place. Entries are addressed by name or index
    (``entries.ckbg.train.steps=10``); the value is parsed as YAML (``[1,2]``, ``true``, ``3e-4``).
    Returns the dotted path it set, list items as indices (``entries.2.train.steps``).
    """
    if "=" not in assignment:
        raise SuiteError(
            [Problem("--set", None, None, "", f"'{assignment}' is not key.path=value")]
        )
    key, _, raw = assignment.partition("=")
    value = _override_value(raw, assignment)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise SuiteError([Problem("--set", None, None, "", f"empty key in '{assignment}'")])
    if len(parts) > MAX_DEPTH:
        raise SuiteError(
            [
                Problem(
                    "--set",
                    None,
                    None,
                    "",
                    f"key '{_short(key)}' is {len(parts)} levels deep; at most {MAX_DEPTH}",
                )
            ]
        )
    node: Any = data
    resolved: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            idx = _list_index(node, part, assignment)
            resolved.append(str(idx))
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            resolved.append(part)
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            done = ".".join(parts[:i])
            raise SuiteError(
                [
                    Problem(
                        "--set",
                        None,
                        None,
                        done,
                        f"cannot set '{key}': '{done}' is not a mapping or list",
                    )
                ]
            )
    return ".".join(resolved)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _override_value(raw: str, assignment: str) -> Any:
    """``raw`` parsed by the same bounded YAML reader as suite files; text that is not YAML
    (``description=a: b``) stays a string, but a limit or a duplicate key is an error."""
    if not raw.strip():
        return ""
    where = f"in --set '{_short(assignment)}'"
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SuiteError(
            [Problem("--set", None, None, "", f"{where}: value larger than {MAX_BYTES} bytes")]
        )
    try:
        return load_bounded(raw)[0]
    except YamlLimitError as exc:
        at = f" (value line {exc.line}, column {exc.column})" if exc.line else ""
        raise SuiteError([Problem("--set", None, None, "", f"{where}: {exc}{at}")]) from None
    except yaml.YAMLError:
        return raw


def blame_overrides(problems: list[Problem], overridden: dict[str, str]) -> list[Problem]:
    """Problems about a value that ``--set`` gave point at the ``--set``, not at the file."""
    out = []
    for pr in problems:
        hit = next(
            (
                a
                for path, a in overridden.items()
                if pr.path == path or pr.path.startswith(path + ".")
            ),
            None,
        )
        out.append(
            Problem(
                "--set",
                None,
                None,
                pr.path,
                f"{pr.message} (from --set {_short(hit, 120)})",
                loc=pr.loc,
            )
            if hit
            else pr
        )
    return out


def _list_index(node: list[Any], part: str, assignment: str) -> int:
    if part.isdigit() and int(part) < len(node):
        return int(part)
    names = [x.get("name") for x in node if isinstance(x, dict)]
    if part in names:
        return names.index(part)
    close = difflib.get_close_matches(part, [str(n) for n in names if n], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise SuiteError(
        [
            Problem(
                "--set",
                None,
                None,
                "",
                f"in '{assignment}': no list item named or numbered '{part}'{hint}",
            )
        ]
    )


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
