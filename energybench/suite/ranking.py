"""Which serving scenario gives each entry's IEC, so that only like figures are ranked together.

Every ranked entry's IEC must come from the same scenario kind (throughput, stream, load) at the
same batch size: J/frame of a 30 fps stream (idle time between frames included) and J/item of a
closed-loop batch are different quantities. The reference is ``metric.iec_scenario`` (a scenario
name) at ``metric.iec_batch_size`` (default: the reference scenario's first batch size); without
``iec_scenario``, the first scenario of the first entry that serves. An entry with no scenario of
that kind and batch size gets no IEC and a reason, never another scenario's figure.

Works on the typed :class:`~energybench.suite.schema.Suite` (the one ``validate`` checked, or
the one a run's manifest stores), so ``validate`` and the report agree. It must not read run
results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from energybench.suite.scenarios import ScenarioSettings, Throughput

if TYPE_CHECKING:
    from energybench.suite.schema import Suite


@dataclass(frozen=True)
class IecChoice:
    """The scenario (name) and batch size giving one entry's IEC, or why there is none."""

    scenario: str | None
    batch_size: int | None
    reason: str | None = None


@dataclass(frozen=True)
class IecReference:
    """The scenario kind and batch size every ranked IEC comes from."""

    kind: str
    batch_size: int
    name: str | None  # metric.iec_scenario, when set

    def describe(self) -> str:
        named = f" '{self.name}'" if self.name else ""
        return f"{self.kind} scenario{named} at batch size {self.batch_size}"

    def basis_label(self) -> str:
        """What every ranked IEC is, in words, for tables ("J/item of the throughput ...")."""
        what = {
            "throughput": "closed-loop J/item (the model's own cost per item)",
            "stream": "J/frame of a paced stream (idle time between frames included)",
        }.get(self.kind, f"J/item of the {self.kind} scenario")
        return f"{what}: {self.describe()}"


def _name(sc: ScenarioSettings) -> str:
    return sc.name or sc.scenario


def _batches(sc: ScenarioSettings) -> list[int]:
    return list(sc.batch_sizes or [1]) if isinstance(sc, Throughput) else [1]


def iec_reference(suite: Suite) -> IecReference | None:
    """The reference scenario kind and batch size (None when no entry serves)."""
    want, batch = suite.metric.iec_scenario, suite.metric.iec_batch_size
    for e in suite.entries:
        for sc in e.serve:
            if want is None or _name(sc) == want:
                b = batch if batch is not None else _batches(sc)[0]
                return IecReference(sc.scenario, int(b), want)
    return None


def iec_choices(suite: Suite) -> dict[str, IecChoice]:
    """Per entry, which scenario (by name) and batch size give its IEC, or the reason none does."""
    ref = iec_reference(suite)
    want = suite.metric.iec_scenario
    out: dict[str, IecChoice] = {}
    for e in suite.entries:
        scenarios = e.serve
        if ref is None:
            why = f"no entry has a scenario named '{want}'" if want else "no entry serves"
            out[e.name] = IecChoice(None, None, f"IEC not defined: {why}")
            continue
        match = [
            sc
            for sc in scenarios
            if sc.scenario == ref.kind
            and ref.batch_size in _batches(sc)
            and (want is None or _name(sc) == want)
        ]
        if match:
            out[e.name] = IecChoice(_name(match[0]), ref.batch_size)
        else:
            have = ", ".join(f"{_name(s)} ({s.scenario})" for s in scenarios) or "none"
            out[e.name] = IecChoice(
                None,
                None,
                f"no {ref.describe()} (IEC must come from the same scenario kind and batch "
                f"size for every ranked entry; its scenarios: {have})",
            )
    return out


def unrankable(suite: Suite) -> dict[str, str]:
    """Entries (with ``rank: true``) that cannot be ranked, with the reason."""
    choices = iec_choices(suite)
    return {
        e.name: reason
        for e in suite.entries
        if e.rank and (reason := choices[e.name].reason) is not None
    }
