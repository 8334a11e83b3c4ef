"""The allocator setting: applied once, recorded, and it stops glibc from returning freed blocks."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

_PROBE = """
import ctypes, ctypes.util, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "keep":
    from energybench.run.allocator import keep_freed_memory
    assert keep_freed_memory()["tuned"]
def minor_faults():
    return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])
size = 16 * 1024 * 1024
def frame():  # three 16 MB intermediates alive at once, written, then freed
    blocks = [libc.malloc(size) for _ in range(3)]
    for p in blocks:
        ctypes.memset(p, 1, size)
    for p in blocks:
        libc.free(p)
frame(); frame()  # warm up: glibc's thresholds settle
before = minor_faults()
for _ in range(10):
    frame()
print(minor_faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_freed_blocks_stay_in_the_process() -> None:
    """Without the setting, glibc trims the freed blocks every frame and each frame pays fresh
    pages (thousands of page faults); with it the blocks are reused (almost none)."""
    default, kept = _faults("default"), _faults("keep")
    assert default > 10 * 4000  # ~4096 faults per 16 MB block and frame
    assert kept < 200


def test_recorded_in_the_environment_once_applied() -> None:
    from energybench.run import allocator
    from energybench.run.environment import snapshot

    allocator.keep_freed_memory()
    first = allocator.allocator_settings()
    assert allocator.keep_freed_memory() is first  # idempotent: applied once
    assert snapshot()["allocator"] == first
    if GLIBC:
        assert first["tuned"] and first["mmap_threshold_bytes"] == 32 * 1024 * 1024


_RUNNER = """
import sys
from pathlib import Path
from rich.console import Console
from energybench.run import allocator
from energybench.run.runner import Runner
from energybench.records.store import RunStore
from energybench.suite import load_suite
loaded = load_suite(Path(sys.argv[1]))
store = RunStore.create(Path(sys.argv[2]), loaded.suite.name, loaded.config_hash)
assert allocator.allocator_settings() is None
Runner(loaded, store, Console())  # what an in-process run and every executor job build
print(allocator.allocator_settings()["tuned"])
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_every_runner_applies_the_setting(tmp_path: Path) -> None:
    """In-process runs and executor jobs (each its own process) all build a Runner."""
    suite = Path(__file__).resolve().parents[2] / "suites" / "smoke.yaml"
    args = [sys.executable, "-c", _RUNNER, str(suite), str(tmp_path)]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_a_run_records_the_allocator_setting_it_ran_with() -> None:
    import json

    from tests.helpers.report import tiny_run

    manifest = json.loads((tiny_run() / "manifest.json").read_text())
    allocator = manifest["environment"]["allocator"]
    assert allocator["tuned"] is True and allocator["allocator"].startswith("glibc")
