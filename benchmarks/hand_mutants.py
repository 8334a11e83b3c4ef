"""Hand-written mutants of the code mutmut 3 does not mutate: decorated functions, constants.

mutmut 3.8 skips every function with a decorator other than one ``@staticmethod`` or
``@classmethod`` (``mutation/file_mutation.py``), and module-level assignments: a ``@property``,
a pydantic validator or serializer and a constant tuple are never mutated by
``benchmarks/mutation.py``. For ``records/window.py`` that is most of the file: its sums, kinds
and flags are properties, its read-side checks a ``model_validator``, the checked sums a tuple.
Each mutant below is one line changed the way mutmut would (an operator flipped, a condition or
filter dropped, a value replaced); it is applied to a scratch copy of the committed tree
(``git archive HEAD``), the group's tests run against it (``-x``), and it is killed when they
fail::

    python benchmarks/hand_mutants.py window          # every mutant of the group
    python benchmarks/hand_mutants.py window --only 3 7

Results: ``docs/validation/mutation-meters.md`` (section "records/window.py").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation import ROOT, groups  # noqa: E402

#: group -> file -> (function, line as written, line as mutated); each line occurs once
MUTANTS: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "window": {
        "energybench/records/window.py": [
            (
                "DeviceEnergy.is_estimate",
                "return is_estimated_source(self.source)",
                "return not is_estimated_source(self.source)",
            ),
            (
                "DeviceEnergy.from_dict",
                "for k, v in d.items() if k in names}",
                "for k, v in d.items() if k not in names}",
            ),
            (
                "DeviceEnergy.from_dict",
                "return cls(**{k: v for k, v in d.items() if k in names})",
                "return cls(**d)",
            ),
            ("CHECKED", '"energy_j", "uncertainty_j", "sources",', '"uncertainty_j", "sources",'),
            ("CHECKED", '"energy_j", "uncertainty_j", "sources",', '"energy_j", "sources",'),
            ("CHECKED", '"energy_j", "uncertainty_j", "sources",', '"energy_j", "uncertainty_j",'),
            (
                "DERIVED",
                '    "measured_energy_j",\n    "measured_uncertainty_j",\n',
                '    "measured_uncertainty_j",\n    "measured_energy_j",\n',
            ),
            ("_LAYOUT", '*DERIVED, "flags", "devices")', '*DERIVED, "devices", "flags")'),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_simulated", "complete", "gaps")',
            ),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_shared", "complete", "gaps")',
            ),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_shared", "is_simulated", "gaps")',
            ),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_shared", "is_simulated", "complete")',
            ),
            (
                "CHECKED",
                '"is_shared", "is_simulated", "complete", "gaps")',
                '"is_shared", "is_simulated", "complete", "gaps", "is_estimate")',
            ),
            ("Window._keep_order", "if not isinstance(data, dict):", "if isinstance(data, dict):"),
            (
                "Window._keep_order",
                "for k, v in data.items() if k not in DERIVED})",
                "for k, v in data.items() if k in DERIVED})",
            ),
            (
                "Window._keep_order",
                'w.__pydantic_private__["_order"] = tuple(data)',
                'w.__pydantic_private__["_order"] = ()',
            ),
            ("Window._keep_order", "for key in CHECKED:", "for key in ():"),
            (
                "Window._keep_order",
                "if key in data and not _same(data[key], w.derived(key)):",
                "if key in data or not _same(data.get(key), w.derived(key)):",
            ),
            (
                "Window._keep_order",
                "if key in data and not _same(data[key], w.derived(key)):",
                "if key in data and _same(data[key], w.derived(key)):",
            ),
            ("Window._keep_order", "raise ValueError(", "raise TypeError("),
            (
                "Window._in_order",
                "stored = [k for k in self._order if k in DERIVED]",
                "stored = [k for k in self._order if k not in DERIVED]",
            ),
            ("Window._in_order", "for k in stored or DERIVED)", "for k in stored)"),
            (
                "Window._in_order",
                "out.update((k, self.derived(k)) for k in stored or DERIVED)",
                "pass",
            ),
            ("Window._in_order", "layout = self._order if stored else _LAYOUT", "layout = _LAYOUT"),
            (
                "Window._in_order",
                "layout = self._order if stored else _LAYOUT",
                "layout = self._order",
            ),
            (
                "Window._in_order",
                "return {**{k: out[k] for k in layout if k in out}, **out}",
                "return {k: out[k] for k in layout if k in out}",
            ),
            (
                "Window.charged",
                "return [d for d in self.devices if d.charged]",
                "return list(self.devices)",
            ),
            (
                "Window.charged",
                "return [d for d in self.devices if d.charged]",
                "return [d for d in self.devices if not d.charged]",
            ),
            ("Window.energy_j", "return self._sum(None)", "return self._sum(False)"),
            ("Window.uncertainty_j", "return self._rss(None)", "return self._rss(False)"),
            ("Window.measured_energy_j", "return self._sum(False)", "return self._sum(None)"),
            ("Window.measured_uncertainty_j", "return self._rss(False)", "return self._rss(None)"),
            ("Window.estimated_energy_j", "return self._sum(True)", "return self._sum(None)"),
            (
                "Window.measured_kinds",
                "{d.kind for d in self.charged if not d.is_estimate and d.energy_j is not None}",
                "{d.kind for d in self.charged if not d.is_estimate}",
            ),
            (
                "Window.measured_kinds",
                "{d.kind for d in self.charged if not d.is_estimate and d.energy_j is not None}",
                "{d.kind for d in self.devices if not d.is_estimate and d.energy_j is not None}",
            ),
            (
                "Window.estimated_kinds",
                "{d.kind for d in self.charged if d.is_estimate and d.energy_j is not None}",
                "{d.kind for d in self.charged if d.is_estimate}",
            ),
            (
                "Window.estimated_kinds",
                "{d.kind for d in self.charged if d.is_estimate and d.energy_j is not None}",
                "{d.kind for d in self.devices if d.is_estimate and d.energy_j is not None}",
            ),
            (
                "Window.sources",
                "return sorted({str(d.source) for d in self.charged})",
                "return sorted({str(d.source) for d in self.devices})",
            ),
            (
                "Window.is_estimate",
                "return any(d.is_estimate and d.energy_j is not None for d in self.charged)",
                "return any(d.is_estimate for d in self.charged)",
            ),
            (
                "Window.is_estimate",
                "return any(d.is_estimate and d.energy_j is not None for d in self.charged)",
                "return any(d.is_estimate and d.energy_j is not None for d in self.devices)",
            ),
            (
                "Window.is_shared",
                "return any(d.shared for d in self.charged)",
                "return any(d.shared for d in self.devices)",
            ),
            (
                "Window.is_shared",
                "return any(d.shared for d in self.charged)",
                "return all(d.shared for d in self.charged)",
            ),
            (
                "Window.is_simulated",
                "return any(d.simulated for d in self.devices)",
                "return any(d.simulated for d in self.charged)",
            ),
            (
                "Window.is_simulated",
                "return any(d.simulated for d in self.devices)",
                "return all(d.simulated for d in self.devices)",
            ),
            (
                "Window.complete",
                "return all(d.complete for d in self.charged)",
                "return all(d.complete for d in self.devices)",
            ),
            (
                "Window.complete",
                "return all(d.complete for d in self.charged)",
                "return any(d.complete for d in self.charged)",
            ),
        ]
    }
}


def run_one(folder: Path, path: str, old: str, new: str, tests: list[str]) -> bool:
    """Apply one mutant in ``folder``, run ``tests``, restore the file; True when killed."""
    target = folder / path
    original = target.read_text()
    if original.count(old) != 1:
        raise SystemExit(f"{path}: {old!r} occurs {original.count(old)} times, not once")
    target.write_text(original.replace(old, new))
    try:
        env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": "."}
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, timeout=600)
        return done.returncode != 0
    finally:
        target.write_text(original)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("group", choices=sorted(MUTANTS))
    ap.add_argument("--only", nargs="*", type=int, default=[], help="mutant numbers to run")
    args = ap.parse_args()
    group = groups()[args.group]
    tests = list(group["tests"]) + (["-k", group["deselect"]] if group.get("deselect") else [])
    folder = Path(f"/tmp/hand-mutants-{args.group}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    killed = total = 0
    n = 0
    for path, mutants in MUTANTS[args.group].items():
        for where, old, new in mutants:
            n += 1
            if args.only and n not in args.only:
                continue
            dead = run_one(folder, path, old, new, tests)
            total += 1
            killed += dead
            status = "killed" if dead else "SURVIVED"
            print(f"{n:3d} {status:8s} {where}: {old!r} -> {new!r}", flush=True)
    print(f"{killed} of {total} killed ({100 * killed / total:.1f} %)" if total else "none run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
