"""First contact with a GPU server: run every GPU check once and write what was seen.

Run on a GPU machine (≤ 10 minutes on one H100)::

    python benchmarks/gpu_validate.py [--gpu 0] [--out docs/validation]

It only reads the device's settings (NVML, read-only: it never changes clocks, power limits,
persistence or MIG), then, each as a recorded command with its exit code, time and output:

1. the environment: driver, GPU, power limit, clocks, persistence, ECC, MIG (NVML), torch/CUDA;
2. ``pytest -m gpu``;
3. ``energybench meters``;
4. the CKBG benchmark on CUDA (fp32, fp16, bf16, ``torch.compile``);
5. a short ``energybench run`` of ``suites/vsr-gpu.yaml`` (where that suite is absent:
   ``suites/vsr.yaml`` with ``--set``/``--only`` overrides, and the report says so);
6. idle power before any work (cold), the NVML counter against integrated power under a GEMM
   load, and idle power again after that warm-up;

and writes ``<out>/<date>-<gpu>.md`` with every figure and command. ``--simulate h100`` runs the
same steps on the CPU against the simulated H100 (fake NVML behind the real adapter), small and
fast (< 60 s), labelled SIMULATED in its output and file name: CI runs it so the script cannot
rot. Exit status: 0 when every step passed, 1 otherwise (the report is written either way),
2 for bad options. Python packages the steps need and do not find are named with how to bring
them (see the README: wheels carried to a machine without network access).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: modules each step needs (import name -> pip name)
CORE = {"torch": "torch", "numpy": "numpy"}
CLI = {
    "typer": "typer", "yaml": "pyyaml", "jinja2": "jinja2", "rich": "rich",
    "pydantic": "pydantic", "codecarbon": "codecarbon", "pytest": "pytest",
}  # fmt: skip
REAL = {"pynvml": "nvidia-ml-py"}
OPTIONAL = {"onnxruntime": "onnxruntime-gpu", "tensorrt": "tensorrt"}


@dataclass
class Step:
    """One recorded check: what ran, how it ended, what it showed."""

    name: str
    command: str
    rc: int | None = None
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    skipped: str | None = None
    results_dir: Path | None = None  # a suite run's --out: its records are summarised

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.rc == 0


def missing(modules: dict[str, str]) -> list[str]:
    """pip names of the modules that cannot be imported here."""
    return [pip for mod, pip in modules.items() if importlib.util.find_spec(mod) is None]


def run_cmd(step: Step, argv: list[str], timeout_s: float, env: dict[str, str]) -> Step:
    """Run ``argv`` from the repository root; record exit code, time and output."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
        )
        step.rc, step.output = proc.returncode, (proc.stdout + proc.stderr)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        step.rc = 124
        step.output = (out.decode() if isinstance(out, bytes) else out) + "\n[timed out]"
    step.seconds = time.perf_counter() - t0
    return step


# ----------------------------------------------------------------------------- environment
def _q(fn: Any, *args: Any) -> Any:
    """One NVML query; a missing function or failing call is recorded as text, not raised."""
    if fn is None:
        return "n/a (not in this NVML)"
    try:
        v = fn(*args)
    except Exception as exc:  # noqa: BLE001 - an unsupported query is a fact to record
        return f"n/a ({type(exc).__name__})"
    return v.decode() if isinstance(v, bytes) else v


def nvml_environment(nvml: Any, index: int) -> dict[str, Any]:
    """Driver and device settings through NVML (read-only queries only)."""
    nvml.nvmlInit()
    try:
        h = nvml.nvmlDeviceGetHandleByIndex(index)
        g = lambda name: getattr(nvml, name, None)  # noqa: E731
        limit = _q(g("nvmlDeviceGetEnforcedPowerLimit"), h)
        mig = _q(g("nvmlDeviceGetMigMode"), h)
        ecc = _q(g("nvmlDeviceGetEccMode"), h)
        return {
            "driver": _q(g("nvmlSystemGetDriverVersion")),
            "gpu": _q(g("nvmlDeviceGetName"), h),
            "uuid": _q(g("nvmlDeviceGetUUID"), h),
            "power_limit_w": limit / 1000 if isinstance(limit, int | float) else limit,
            "sm_clock_mhz": _q(g("nvmlDeviceGetClockInfo"), h, 1),
            "mem_clock_mhz": _q(g("nvmlDeviceGetClockInfo"), h, 2),
            "max_sm_clock_mhz": _q(g("nvmlDeviceGetMaxClockInfo"), h, 1),
            "persistence_mode": _q(g("nvmlDeviceGetPersistenceMode"), h),
            "ecc_mode_current_pending": list(ecc) if isinstance(ecc, list | tuple) else ecc,
            "mig_mode_current_pending": list(mig) if isinstance(mig, list | tuple) else mig,
            "temperature_c": _q(g("nvmlDeviceGetTemperature"), h, 0),
        }
    finally:
        nvml.nvmlShutdown()


def environment(args: argparse.Namespace) -> Step:
    """The environment step: NVML facts (simulated: the fake H100's) and torch's view."""
    step = Step("environment", "NVML read-only queries; torch.version / torch.cuda")
    t0 = time.perf_counter()
    try:
        if args.simulate:
            from energybench.meters.sim.profiles import simulated_nvml

            nvml: Any = simulated_nvml(args.simulate)
        else:
            import pynvml

            nvml = pynvml
        step.figures = nvml_environment(nvml, args.gpu)
        import torch

        step.figures["torch"] = torch.__version__
        step.figures["cuda_runtime"] = torch.version.cuda
        step.figures["cudnn"] = torch.backends.cudnn.version() if not args.simulate else None
        step.figures["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        step.figures["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
        step.figures["python"] = sys.version.split()[0]
        step.rc = 0
    except Exception as exc:  # noqa: BLE001 - recorded; the other steps still run
        step.rc, step.output = 1, f"{type(exc).__name__}: {exc}"
    step.seconds = time.perf_counter() - t0
    return step


# ----------------------------------------------------------------------------- meter checks
def meter_checks(args: argparse.Namespace) -> Step:
    """Idle (cold) → counter vs integrated under a GEMM load → idle (warm), via the monitor."""
    import torch

    from energybench.meters.factory import build_monitor
    from energybench.suite.energy import EnergySettings

    sim = bool(args.simulate)
    idle_s, load_s = (1.0, 2.0) if sim else (10.0, 30.0)
    step = Step(
        "meters under load",
        f"build_monitor(nvml, gpu {args.gpu}); measure_idle({idle_s} s); window over "
        f"{load_s} s of {'CPU' if sim else 'CUDA'} GEMMs; measure_idle({idle_s} s)",
    )
    t0 = time.perf_counter()
    device = torch.device("cpu" if sim else f"cuda:{args.gpu}")
    n = 512 if sim else 8192
    a, b = (torch.rand(n, n, device=device) for _ in range(2))
    try:
        settings = EnergySettings(meters=["nvml"], sample_period_s=0.05)
        with build_monitor(settings, [args.gpu], None, simulate=args.simulate) as mon:
            cold = mon.measure_idle(idle_s)
            mon.begin_window("load")
            t_end, flops = time.perf_counter() + load_s, 0
            while time.perf_counter() < t_end:
                torch.mm(a, b)
                flops += 2 * n**3
            meas = mon.end_window("load")
            warm = mon.measure_idle(idle_s)
        dev = meas.devices[0]
        step.figures = {
            "idle_cold_w": cold,
            "idle_warm_w": warm,
            "load_s": meas.duration_s,
            "load_energy_j": dev.energy_j,
            "load_source": str(dev.source),
            "load_mean_power_w": dev.mean_power_w,
            "load_tflops": flops / meas.duration_s / 1e12,
            "cross_check": dev.cross_check,
            "simulated": dev.simulated,
        }
        flagged = bool(dev.cross_check and dev.cross_check["flag"])
        step.rc = 1 if flagged or dev.cross_check is None else 0
        step.output = "\n".join(dev.issues)
    except Exception as exc:  # noqa: BLE001 - recorded
        step.rc, step.output = 1, f"{type(exc).__name__}: {exc}"
    step.seconds = time.perf_counter() - t0
    return step


# ----------------------------------------------------------------------------- command steps
def suite_command(args: argparse.Namespace, out_dir: Path) -> tuple[list[str], str | None]:
    """The short suite run, and a note when ``vsr-gpu.yaml`` is absent (fallback used)."""
    base = [sys.executable, "-m", "energybench", "run", "--out", str(out_dir), "--no-report"]
    sim = ["--simulate", args.simulate] if args.simulate else []
    short = ["--set", "energy.trials=1", "--set", "energy.max_trials=1"]
    gpu_suite = ROOT / "suites" / "vsr-gpu.yaml"
    if gpu_suite.exists() and not args.simulate:  # two served entries, training shortened
        only = ["--only", "ckbg-merged-ort", "--only", "ckbg-merged-bf16"]
        return [*base, "suites/vsr-gpu.yaml", *short, *only,
                "--set", "defaults.train.steps=100"], None  # fmt: skip
    why = (
        "suites/vsr-gpu.yaml is absent here: suites/vsr.yaml with overrides instead"
        if not gpu_suite.exists()
        else "simulated: suites/vsr.yaml with small overrides (the GPU-scale suite is too big "
        "for a CPU)"
    )
    steps = "2" if args.simulate else "200"
    small = [
        "--only", "ckbg-merged-ort",
        "--set", f"entries.espcn.train.steps={steps}",
        "--set", f"entries.ckbg-grafted.train.steps={steps}",
        "--set", "energy.idle_baseline_s=1", "--set", "energy.min_window_s=1",
        "--set", "defaults.dataset.params.max_frames=8",
        "--set", "defaults.serve=[{name: stream, scenario: stream, fps: 10, frames: 8, "
        "warmup: 1}]",
    ]  # fmt: skip
    return [*base, "suites/vsr.yaml", *short, *small, *sim], why


def command_steps(args: argparse.Namespace, work: Path) -> list[tuple[Step, list[str], float]]:
    """pytest -m gpu, meters, the CKBG benchmark and the suite run, with their time limits."""
    py, sim = sys.executable, ["--simulate", args.simulate] if args.simulate else []
    bench = [py, "benchmarks/bench_ckbg.py", "--json"]
    if args.simulate:  # the CPU stands in: tiny sizes, fp32 and bf16 (when the CPU has it)
        bench += ["--device", "cpu", "--smoke"]
    else:
        bench += [
            "--device", f"cuda:{args.gpu}", "--compile", "--dtypes", "fp32,fp16,bf16",
            "--rounds", "3", "--seconds", "1", "--lr", "720x1280", "--models", "merged",
        ]  # fmt: skip
    suite, note = suite_command(args, work / "results")
    # simulated: the NVML tests only (they skip without a GPU); real: every GPU test
    pytest = [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    pytest.append("tests/meters/test_gpu_real.py" if args.simulate else "tests")
    out = [
        (Step("pytest -m gpu", ""), pytest, 120),
        (Step("energybench meters", ""), [py, "-m", "energybench", "meters", *sim], 60),
        (Step("CKBG benchmark", ""), bench, 150),
        (
            Step(
                "short suite run",
                "",
                figures={"note": note} if note else {},
                results_dir=work / "results",
            ),
            suite,
            200,
        ),  # fmt: skip
    ]
    for step, argv, _ in out:
        step.command = " ".join(a if re.fullmatch(r"[\w./:=,-]+", a) else repr(a) for a in argv)
        step.command = step.command.replace(py, "python")
    return out


def summarise(step: Step) -> None:
    """Figures from a command's output (CKBG rows; pytest's tally; the suite's run folder)."""
    if step.name == "CKBG benchmark" and step.rc == 0:
        data = json.loads(step.output[step.output.index("{") : step.output.rindex("}") + 1])
        step.figures["peaks"] = data["peaks"]
        step.figures["rows"] = {
            f"{m} / {c}": {
                k: r.get(k)
                for k in ("dtype", "median_fps", "vs_eager", "frac_gemm_peak", "compiled")
            }
            if "error" not in r
            else {"error": r["error"]}
            for m, res in data["models"].items()
            for c, r in res.items()
        }
        step.output = ""  # the figures carry it
    elif step.results_dir is not None:
        step.figures.update(suite_figures(step.results_dir))
    elif step.name == "pytest -m gpu":
        tally = re.findall(r"\d+ (?:passed|failed|skipped|deselected|error)", step.output)
        step.figures["tally"] = ", ".join(tally)
        if step.rc == 5:  # nothing selected or everything deselected: not a failure here
            step.rc = 0


def suite_figures(results: Path) -> dict[str, Any]:
    """Per entry of the suite run: the training batch (``auto``: as sized on this device) and
    the ranked IEC (J per item), read back from its records."""
    out: dict[str, Any] = {}
    for train in sorted(results.glob("*/*/entries/*/train.json")):
        rec = json.loads(train.read_text())
        stats = rec.get("train") or {}
        sizing = stats.get("batch_sizing") or {}
        if stats.get("batch_size") is not None:
            per_item = sizing.get("per_item_bytes")
            out[f"{rec.get('entry')} batch"] = f"{stats['batch_size']}" + (
                f" (auto: {per_item / 2**20:.0f} MiB/item measured)" if per_item else ""
            )
    return out


# ----------------------------------------------------------------------------- report
def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "gpu"


def render(steps: list[Step], args: argparse.Namespace, started: str, total_s: float) -> str:
    """The Markdown report: banner, environment, every step's command, status and figures."""
    env = steps[0].figures
    label = "SIMULATED " if args.simulate else ""
    lines = [f"# {label}GPU validation: {env.get('gpu', 'unknown GPU')} ({started})", ""]
    if args.simulate:
        lines += [
            f"> **SIMULATED** (`--simulate {args.simulate}`): every step ran on the CPU against "
            "a simulated GPU (fake NVML behind the real adapter). No figure here is a "
            "measurement of a GPU; this file shows the script runs.",
            "",
        ]
    ok = sum(s.ok for s in steps)
    lines += [
        f"Command: `python benchmarks/gpu_validate.py {' '.join(args.argv)}`; "
        f"{ok}/{len(steps)} steps passed in {total_s:.0f} s.",
        "",
        "## Environment",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in env.items()],
        "",
    ]
    for s in steps[1:]:
        status = (
            f"skipped: {s.skipped}" if s.skipped else ("passed" if s.ok else f"FAILED ({s.rc})")
        )
        lines += [f"## {s.name}: {status}", "", f"`{s.command}` ({s.seconds:.1f} s)", ""]
        for k, v in s.figures.items():
            if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
                cols = sorted({c for x in v.values() for c in x})
                lines += [f"**{k}**", "", f"| | {' | '.join(cols)} |", "|---" * (len(cols) + 1)
                          + "|"]  # fmt: skip
                lines += [
                    f"| {name} | " + " | ".join(_fmt(x.get(c)) for c in cols) + " |"
                    for name, x in v.items()
                ]
                lines.append("")
            else:
                lines.append(f"- {k}: {_fmt(v)}")
        tail = s.output.strip()[-3000:]
        if tail:
            lines += ["", "<details><summary>output (tail)</summary>", "", "```", tail, "```",
                      "</details>"]  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


# ----------------------------------------------------------------------------- main
def preflight(args: argparse.Namespace) -> list[str]:
    """What is missing, as lines telling how to bring it."""
    need = {**CORE, **CLI, **({} if args.simulate else REAL)}
    lacking = missing(need)
    lines = []
    if lacking:
        lines.append(
            f"missing Python packages: {', '.join(lacking)}. Install them "
            f"(pip install {' '.join(lacking)}), or on a machine without network access carry "
            "wheels (README: 'Validating on a GPU machine'). Steps that need them are skipped."
        )
    opt = missing(OPTIONAL)
    if opt and not args.simulate:
        lines.append(
            f"optional, not installed (their backends are not validated): {', '.join(opt)}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", type=int, default=0, help="torch CUDA index to validate")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "validation")
    ap.add_argument("--simulate", metavar="PROFILE", help="run on the CPU against a simulated GPU")
    args = ap.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.simulate and args.simulate != "h100":
        ap.error("--simulate: only 'h100' is supported by this script")
    label = "SIMULATED " if args.simulate else ""
    notes = preflight(args)
    for line in notes:
        print(f"gpu_validate: {line}", flush=True)
    started = dt.datetime.now().strftime("%Y-%m-%d")
    t_all = time.perf_counter()
    steps = [environment(args)]
    print(f"{label}environment: {steps[0].figures or steps[0].output}", flush=True)
    lacking_cli = missing(CLI)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory() as tmp:
        for step, argv_, limit in command_steps(args, Path(tmp)):
            if (
                lacking_cli
                and "energybench" in step.command
                or "pytest" in step.command
                and (importlib.util.find_spec("pytest") is None)
            ):
                step.skipped = f"missing packages: {', '.join(lacking_cli)}"
            else:
                run_cmd(step, argv_, limit, env)
                summarise(step)
            steps.append(step)
            print(f"{label}{step.name}: {'ok' if step.ok else step.skipped or step.rc} "
                  f"({step.seconds:.1f} s)", flush=True)  # fmt: skip
        steps.append(meter_checks(args))
        print(f"{label}meters under load: {steps[-1].figures or steps[-1].output}", flush=True)
    if notes:
        steps[0].figures["missing_packages"] = " / ".join(notes)
    gpu = steps[0].figures.get("gpu", "gpu")
    name = f"{started}-{slug(str(gpu))}" + ("-SIMULATED" if args.simulate else "") + ".md"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / name
    path.write_text(render(steps, args, started, time.perf_counter() - t_all))
    print(f"{label}report: {path}")
    return 0 if all(s.ok for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
