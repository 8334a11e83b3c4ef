"""The command line: a thin typer layer over library calls, error formatting and exit codes.

Exit codes: 0 success, 1 a run failed, 2 bad input (bad suite, bad path, bad override).
User errors are printed as one paragraph, never as a traceback; a bug that stops a run is one
line pointing to its crash report (traceback, command line, versions), exit 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from energybench.version import __version__

if TYPE_CHECKING:
    from energybench.records.store import RunData
    from energybench.run.runner import RunOutcome
    from energybench.suite.load import LoadedSuite
    from energybench.suite.schema import Suite

app = typer.Typer(
    name="energybench",
    help="Full-cycle energy benchmark for efficient vision models: train, compress, serve, "
    "measure, and rank by lifecycle energy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped into a log (nohup, CI, `| tee`), rich would cut tables at 80 columns: print them whole.
_PIPED_WIDTH = 200
console = Console(width=None if sys.stdout.isatty() else _PIPED_WIDTH)
err = Console(stderr=True, width=None if sys.stderr.isatty() else _PIPED_WIDTH)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(
        f"[bold red]error:[/bold red] {message}", highlight=False, markup=True, soft_wrap=True
    )
    return typer.Exit(code)


def _user_error(exc: BaseException | str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """``_fail`` with an exception's message shown verbatim (paths may contain ``[``)."""
    from rich.markup import escape

    return _fail(escape(str(exc)), code)


def _check_outputs(files: dict[str, Path | None], folders: dict[str, Path | None]) -> None:
    """Exit 2 naming the path and the reason when an output cannot be written (before work)."""
    from energybench.outpaths import OutputPathError, check_dir_target, check_file_target

    try:
        for what, path in files.items():
            if path is not None and str(path) != "-":
                check_file_target(path, what)
        for what, path in folders.items():
            if path is not None:
                check_dir_target(path, what)
    except OutputPathError as exc:
        raise _user_error(exc) from None


def _write_failed(exc: OSError, path: Path) -> typer.Exit:
    """A write that the operating system refused: the file and the reason, exit 1."""
    return _user_error(
        f"{exc.filename or path}: cannot be written ({exc.strerror or exc})", EXIT_FAILED
    )


def _bug_report(exc: Exception, run_dir: Path | None) -> typer.Exit:
    """A bug (not the user's input) stopped a run: save its crash report, say where, exit 1."""
    import traceback

    from energybench.crash import write_crash_report

    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
    saved = f"finished phases are saved in {run_dir} (--resume it once fixed); " if run_dir else ""
    try:
        path = write_crash_report(exc, run_dir)
    except OSError as why:  # no file to point to: show the traceback itself
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return _user_error(
            f"energybench stopped on a bug ({what}); {saved}its crash report could not be "
            f"saved ({why}): please report the traceback above",
            EXIT_FAILED,
        )
    return _user_error(
        f"energybench stopped on a bug, not a problem with your input ({what}); {saved}the "
        f"traceback, command line and versions are in {path}: please attach it to a bug report",
        EXIT_FAILED,
    )


def _version(value: bool) -> None:
    if value:
        console.print(f"energybench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """energybench command line."""


def _load(suite: Path, overrides: list[str] | None):  # noqa: ANN202 - LoadedSuite, lazy import
    from energybench.suite import SuiteError, load_suite

    try:
        return load_suite(suite, overrides or [])
    except SuiteError as exc:
        raise _fail(str(exc).replace("[", r"\[")) from None


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file, e.g. suites/vsr.yaml.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output root for runs.")] = Path(
        "results"
    ),
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a suite value: key.path=value (repeatable), e.g. "
            "entries.ckbg.train.steps=50.",
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Resume this run directory: re-run only phases that did not finish."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only this entry (and what it depends on); repeatable."),
    ] = None,
    report_path: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Where to write the HTML report (default: <out>/reports/<suite>-<run>.html "
            "with --out, else reports/<suite>-<run>.html).",
        ),
    ] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Do not write a report.")] = False,
    simulate: Annotated[
        str | None,
        typer.Option(
            "--simulate",
            metavar="PROFILE",
            help="Dry-run on simulated NVIDIA GPUs (h100, a100, 2xh100, gh200, h100-mig, "
            "h100-shared, h100-container, 4xgh200, gb200): models run on the CPU, the "
            "simulated GPUs are measured through the real NVML code path, and every figure is "
            "labelled simulated.",
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            metavar="local|slurm",
            help="Run one job per entry with submitit: 'slurm' submits them to a Slurm cluster "
            "(exclusive nodes, afterok dependencies; options from the suite's executor: "
            "section), 'local' runs the same jobs on this machine one at a time. Default: "
            "every entry in this process.",
        ),
    ] = None,
) -> None:
    """Run a suite: train, compress and serve every entry, measuring energy; then report."""
    loaded = _load(suite, set_)
    out_given = out != Path("results")  # the report follows an explicit --out
    report_root = out / "reports" if out_given else Path("reports")
    reports = None if no_report or report_path else report_root
    _check_outputs(
        {"--report": None if no_report else report_path},
        {"--out": None if resume else out, "report folder": reports},
    )
    outcome = _run_measured(loaded, out, resume, only, simulate, executor)
    console.print(f"results: [bold]{outcome.run_dir}[/bold]")
    console.print(f"ran {len(outcome.ran)} phase(s), reused {len(outcome.reused)} finished")
    try:
        _print_glance(outcome.run_dir)
        report_ok = no_report or _report_after_run(outcome.run_dir, report_path, report_root)
    except KeyboardInterrupt:  # the run is complete and its lock released: only the report waits
        from rich.markup import escape

        where = escape(str(outcome.run_dir))
        err.print(
            f"[yellow]interrupted while writing the report: the run is complete in {where}; "
            f"write its report with: energybench report {where}[/yellow]",
            highlight=False,
        )
        raise typer.Exit(130) from None
    if not report_ok and outcome.ok:
        raise typer.Exit(EXIT_FAILED)
    if not outcome.ok:
        for name, why in outcome.failed.items():
            err.print(f"[red]entry '{name}' failed: {why}[/red]", highlight=False)
        console.print(f"next: energybench run {suite} --resume {outcome.run_dir}")
        raise typer.Exit(EXIT_FAILED)


def _run_measured(
    loaded: LoadedSuite,
    out: Path,
    resume: Path | None,
    only: list[str] | None,
    simulate: str | None,
    executor: str | None,
) -> RunOutcome:
    """The run itself (in this process, or one job per entry with ``executor``), every failure
    turned into its exit: a user error (2), a full disk or an unwritable folder, Ctrl-C (130),
    a bug (a crash report in the run folder, exit 1)."""
    from energybench.errors import UserError
    from energybench.records.store import DiskFullError
    from energybench.run.runner import run_suite

    run_dir: list[Path] = []  # the run folder, once it exists: where a crash report goes
    try:
        if executor is not None:
            from energybench.run.executors import run_with_executor

            return run_with_executor(
                loaded, executor, out_root=out, resume=resume, only=only, console=console,
                simulate=simulate, on_run_dir=run_dir.append,
            )  # fmt: skip
        return run_suite(
            loaded, out_root=out, resume=resume, only=only, console=console,
            simulate=simulate, on_run_dir=run_dir.append,
        )  # fmt: skip
    except UserError as exc:
        raise _user_error(exc, exc.exit_code) from None
    except DiskFullError as exc:
        raise _user_error(exc, EXIT_FAILED) from None
    except OSError as exc:  # e.g. the disk filled while creating the run folder or its lock
        raise _write_failed(exc, out) from None
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted: finished phases are saved; continue with "
            "--resume <run dir>[/yellow]"
        )
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - a bug in energybench: a crash report, exit 1
        raise _bug_report(exc, run_dir[-1] if run_dir else None) from None


def _report_after_run(run_dir: Path, report_path: Path | None, report_root: Path) -> bool:
    """Write the run's HTML report; False (and a message saying how to retry) when it fails:
    the run's work is saved and never lost to a report error."""
    from rich.markup import escape

    from energybench.plugins.entrypoints import load_run
    from energybench.report.html import write_report
    from energybench.run.runner import test_hold

    try:
        run_data = load_run(run_dir)
        path = report_path or _default_output(run_data, "html", report_root)
        test_hold("report")
        write_report([run_data], path)
    except Exception as exc:  # noqa: BLE001 - the run's work is saved: never lose it here
        where = escape(str(run_dir))
        err.print(
            f"[red]error: the run finished and its results are saved in {where}, but the "
            f"report could not be written ({type(exc).__name__}: {escape(str(exc))}); "
            f"retry with: energybench report {where} "
            "(and please report this as a bug)[/red]",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
        return False
    console.print(f"report: [bold]{path}[/bold]")
    return True


def _print_glance(run_dir: Path) -> None:
    """The terminal leaderboard and break-even lines (display only; never fails the run)."""
    from rich.markup import escape

    from energybench.plugins.entrypoints import load_run
    from energybench.report.terminal import glance

    try:
        console.print(glance(load_run(run_dir)))
    except Exception as exc:  # noqa: BLE001 - the results are saved; the report still follows
        err.print(
            f"[yellow]could not print the leaderboard ({type(exc).__name__}: "
            f"{escape(str(exc))}); see the report[/yellow]",
            highlight=False,
        )


def _default_output(run: RunData, ext: str, folder: Path = Path("reports")) -> Path:
    return folder / f"{run.suite.name}-{run.root.name}.{ext}"


@app.command()
def validate(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="key.path=value")] = None,
    simulate: Annotated[
        str | None,
        typer.Option(
            "--simulate",
            metavar="PROFILE",
            help="Check the devices against a simulated GPU server (h100, a100, 2xh100, ...) "
            "instead of this host.",
        ),
    ] = None,
) -> None:
    """Check a suite without running it: the file, and where each entry would run (this host,
    or --simulate PROFILE): CPU-only methods placed on the CPU, GPU backends that cannot run."""
    from rich.markup import escape

    from energybench.errors import UserError
    from energybench.run.preflight import check_datasets, host_report
    from energybench.suite.ranking import iec_reference, unrankable

    loaded = _load(suite, set_)
    s = loaded.suite
    _check_weights(s, loaded.path.parent)
    try:
        check_datasets(s, None)  # dataset roots: exist, readable, the expected layout (as run)
    except UserError as exc:
        raise _user_error(exc, exc.exit_code) from None
    console.print(
        f"[green]ok[/green]: suite '{s.name}' with {len(s.entries)} entries "
        f"({', '.join(e.name for e in s.entries)}); config hash {loaded.config_hash}"
    )
    ref = iec_reference(s)
    if ref is not None:
        console.print(f"IEC (ranking): the {ref.describe()}", highlight=False)
    for name, why in unrankable(s).items():
        console.print(f"[yellow]entry '{name}' cannot be ranked: {why}[/yellow]", highlight=False)
    try:
        errors, notes = host_report(s, simulate)
    except UserError as exc:  # e.g. an unknown --simulate profile
        raise _user_error(exc, exc.exit_code) from None
    where = f"simulated {simulate}" if simulate else "this host"
    for note in notes:
        console.print(f"[yellow]note ({where}): {escape(note)}[/yellow]", highlight=False)
    if errors:
        for msg in errors:
            err.print(f"[red]error ({where}): {escape(msg)}[/red]", highlight=False)
        raise typer.Exit(2)


def _check_weights(suite: Suite, base: Path) -> None:
    """Declared pretrained weights are in their local cache with their pinned hash (exit 2)."""
    from energybench.models.weights import WeightsError, check_weights

    for e in suite.entries:
        if e.model.weights is not None:
            try:
                check_weights(e.model.weights, e.model.name, base)
            except WeightsError as exc:
                raise _user_error(f"entry '{e.name}': {exc}") from None


def _runs(run_dirs: list[Path]):  # noqa: ANN202
    """Every run folder loaded and checked (a damaged file or a link in it: exit 2, named)."""
    from energybench.errors import UserError
    from energybench.plugins.entrypoints import load_run

    try:
        return [load_run(d) for d in run_dirs]
    except UserError as exc:
        raise _user_error(exc, exc.exit_code) from None


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="HTML file to write.")
    ] = None,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures",
            help="Also write every figure as SVG and PDF, 3.5 in (one paper column) and 7.16 in "
            "(two columns) wide, into this folder, with figures.md listing captions and devices.",
        ),
    ] = None,
) -> None:
    """Render a self-contained HTML leaderboard (several runs: side by side, then each run) and
    print each run's leaderboard as `run` does."""
    from energybench.errors import UserError
    from energybench.report.figures import write_figures
    from energybench.report.html import write_report

    runs = _runs(run_dirs)
    path = output or _default_output(runs[0], "html")
    _check_outputs({"-o/--output": path}, {"--figures": figures})
    try:
        write_report(runs, path)
    except UserError as exc:  # a link planted in the run folder where the report goes
        raise _user_error(exc) from None
    except OSError as exc:
        raise _write_failed(exc, path) from None
    for run in runs:  # what `run` printed at its end: the leaderboard and break-even lines
        _print_glance(run.root)
    console.print(f"report: [bold]{path}[/bold]")
    if figures is not None:
        try:
            files = write_figures(runs, figures)
        except UserError as exc:
            raise _user_error(exc) from None
        except OSError as exc:
            raise _write_failed(exc, figures) from None
        console.print(f"figures: {len(files)} files in [bold]{figures}[/bold]")


@app.command()
def site(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (any suites, machines).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write the site in.")],
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Submission checker: refuse any run that is incomplete, damaged, of an unknown "
            "store version, or whose records do not match its seal (nothing is written).",
        ),
    ] = False,
) -> None:
    """Build a static, offline leaderboard site over many runs: a page per suite (every run and
    machine, with filters) and a page per entry (phases, provenance, traces)."""
    from energybench.report.site import SiteCheckError, build_site

    _check_outputs({}, {"-o/--output": output})
    try:
        index = build_site(list(run_dirs), output, check=check)
    except (SiteCheckError, ValueError) as exc:  # UserErrors are ValueErrors here too
        raise _user_error(exc) from None
    except OSError as exc:
        raise _write_failed(exc, output) from None
    console.print(f"site: [bold]{index}[/bold] ({len(run_dirs)} run(s))")


@app.command()
def export(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
    format_: Annotated[
        str, typer.Option("--format", "-f", help="csv, json, parquet or latex (leaderboard).")
    ] = "csv",
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="File to write ('-': standard output; with --split: a folder)."
        ),
    ] = None,
    split: Annotated[
        bool, typer.Option("--split", help="Write one file per table into the -o folder.")
    ] = False,
    caption: Annotated[
        str | None,
        typer.Option(
            "--caption",
            help="latex: the table's caption (plain text, escaped); the uncertainty convention "
            "is appended to it.",
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="latex: the table's \\label, e.g. tab:energy.")
    ] = None,
) -> None:
    """Export tidy long-format tables (phases, scenarios, metric, break_even, leaderboard).

    Columns and dtypes: docs/export-schema.md. --format latex writes a booktabs table of the
    leaderboard (TEC ± 1σ, IEC [95 % CI], G at each usage intensity) to \\input in a paper.
    """
    from energybench.report.export import FORMATS, export_text, write_export, write_split

    if format_ not in FORMATS:
        raise _fail(f"unknown format '{format_}' (known: {', '.join(FORMATS)})")
    if format_ != "latex" and (caption is not None or label is not None):
        raise _fail("--caption and --label apply to --format latex only")
    runs = _runs(run_dirs)
    try:
        if split:
            if output is None or str(output) == "-":
                raise _fail("--split needs a folder: give it with -o")
            _check_outputs({}, {"-o/--output": output})
            paths = write_split(runs, output, format_)
            console.print(f"export: {len(paths)} files in [bold]{output}[/bold]")
            return
        if str(output) == "-":
            if format_ == "parquet":
                raise _fail("parquet is binary: give a file with -o")
            sys.stdout.write(export_text(runs, format_, caption, label))
            return
        ext = "tex" if format_ == "latex" else format_
        path = output or _default_output(runs[0], ext)
        _check_outputs({"-o/--output": path}, {})
        write_export(runs, path, format_, caption, label)
    except ValueError as exc:
        raise _user_error(exc) from None
    except OSError as exc:
        raise _write_failed(exc, output or Path("reports")) from None
    console.print(f"export: [bold]{path}[/bold]")


def _finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(v) for v in value]
    return value


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="A run directory.")],
    run_b: Annotated[Path, typer.Argument(help="Another run directory of the same suite.")],
    format_: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """Entry by entry, whether two runs agree within their uncertainty (IEC, TEC, score, rank).

    Exit 0: no entry differs; 1: at least one differs (an interval outside the other's);
    2: bad input.
    """
    import json

    from energybench.report.compare import compare_runs

    if format_ not in ("text", "json"):
        raise _fail(f"unknown format '{format_}' (known: text, json)")
    a, b = _runs([run_a, run_b])
    rows = compare_runs(a, b)
    if format_ == "json":
        sys.stdout.write(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    else:
        from energybench.report.terminal import compare_table

        console.print(compare_table(rows, a.root.name, b.root.name), highlight=False)
    if any(r.verdict == "differ" for r in rows):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def plan(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
    p99_ms: Annotated[
        float, typer.Option("--p99-ms", help="Latency target: p99 in ms (rejections count).")
    ],
    rate: Annotated[float, typer.Option("--rate", help="Load to serve: requests (frames) per s.")],
    min_quality: Annotated[
        float | None,
        typer.Option("--min-quality", help="Quality floor on the suite's Q (e.g. SSIM 0.85)."),
    ] = None,
    format_: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """The cheapest measured configuration that meets a p99 target at a rate (no interpolation).

    Exit 0: at least one meets it (cheapest energy per item first); 1: none meets it (the
    nearest miss is printed) or the rate was not measured; 2: bad input.
    """
    import json
    import math

    from energybench.plan import plan as make_plan

    if format_ not in ("text", "json"):
        raise _fail(f"unknown format '{format_}' (known: text, json)")
    for name, v in (("--p99-ms", p99_ms), ("--rate", rate)):
        if not (v > 0 and v < float("inf")):
            raise _fail(
                f"{name} must be a positive number of {'ms' if 'p99' in name else '/s'}, got {v}"
            )
    if min_quality is not None and not math.isfinite(min_quality):
        raise _fail(f"--min-quality must be a finite number (a quality floor), got {min_quality}")
    runs = _runs(run_dirs)
    result = make_plan(runs, p99_ms=p99_ms, rate_per_s=rate, min_quality=min_quality)
    if format_ == "json":  # strict JSON: a non-finite figure is null, never -Infinity
        text = json.dumps(_finite_json(result.to_dict()), indent=2, default=str, allow_nan=False)
        sys.stdout.write(text + "\n")
    else:
        from energybench.report.terminal import plan_text

        console.print(plan_text(result))
    if result.status != "meets":
        raise typer.Exit(EXIT_FAILED)


@app.command()
def meters(
    simulate: Annotated[
        str | None,
        typer.Option(
            "--simulate",
            metavar="PROFILE",
            help="Probe a simulated GPU server instead of NVML: h100, a100, 2xh100, gh200, "
            "h100-mig, h100-shared, h100-container, 4xgh200 or gb200 (figures from it are "
            "marked simulated).",
        ),
    ] = None,
) -> None:
    """Which energy meters work on this machine, what they see, and why not."""
    from energybench.meters.factory import UnknownProfileError, probe_meters
    from energybench.meters.plugins import METERS
    from energybench.plugins.entrypoints import load_all

    _load_installed_plugins(load_all)
    try:
        statuses = probe_meters(simulate=simulate)
    except UnknownProfileError as exc:
        raise _fail(str(exc)) from None
    for status in statuses:
        mark = "[green]ok[/green]" if status.ok else "[red]unavailable[/red]"
        origin = METERS.origin(status.name)
        by = "" if origin == "energybench" else f" ({origin})"
        console.print(f"[bold]{status.name}[/bold]{by}: {mark}", highlight=False)
        if status.reason:
            console.print(f"  why: {status.reason}", highlight=False)
        if status.fix:
            console.print(f"  fix: {status.fix}", highlight=False)
        for d in status.details:
            console.print("  - " + ", ".join(f"{k}={v}" for k, v in d.items()), highlight=False)


@app.command()
def models() -> None:
    """List the registered models, datasets, compression methods and serving scenarios, with
    where each comes from (energybench, or an installed plug-in)."""
    from energybench.data import DATASETS
    from energybench.models import MODELS
    from energybench.plugins.entrypoints import load_all
    from energybench.suite.methods import COMPRESS_METHODS
    from energybench.suite.scenarios import SERVE_SCENARIOS

    _load_installed_plugins(load_all)
    for reg in (MODELS, DATASETS, COMPRESS_METHODS, SERVE_SCENARIOS):
        table = Table(title=f"{reg.kind}s")
        table.add_column("name")
        table.add_column("description")
        table.add_column("origin")
        for name in reg:
            table.add_row(name, reg.help(name), reg.origin(name))
        for fam in reg.families():  # tv:<name>, timm:<name>
            table.add_row(f"{fam.prefix}:<name>", fam.help, reg.origin(f"{fam.prefix}:x"))
        console.print(table)


def _load_installed_plugins(load_all: Callable[[], dict[str, str]]) -> None:
    """Load every installed plug-in for a listing; one that fails is named, not fatal."""
    from energybench.plugins.entrypoints import PluginError

    try:
        load_all()
    except PluginError as exc:
        err.print(f"warning: {exc}", highlight=False, markup=False)


def _exit_interrupted() -> None:
    """Exit 130 at once after a Ctrl-C: everything worth keeping is written and synced (records,
    the released lock, the message), so the interpreter's teardown (seconds of native clean-up
    in torch's thread pools on a loaded machine) is skipped: Ctrl-C ends a run promptly."""
    import logging

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(130)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        _exit_interrupted()
    except SystemExit as exc:
        if exc.code == 130:
            _exit_interrupted()
        raise


if __name__ == "__main__":
    main()
