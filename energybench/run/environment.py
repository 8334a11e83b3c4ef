"""Environment snapshot for the manifest: OS, CPU, RAM, GPUs, library versions, git commit.

Read-only: it queries, never changes, anything on the machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import energybench
from energybench.run.allocator import allocator_settings


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the energybench source tree, if it is a git checkout (with '+dirty')."""
    where = path or Path(energybench.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def torch_gpus() -> list[dict[str, Any]]:
    """GPUs as torch sees them (names, memory, compute capability)."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append(
            {
                "index": i,
                "name": p.name,
                "total_memory_bytes": p.total_memory,
                "capability": f"{p.major}.{p.minor}",
                "uuid": str(getattr(p, "uuid", "")) or None,
            }
        )
    return out


def snapshot() -> dict[str, Any]:
    """Everything about this machine a reader needs to interpret the numbers."""
    import torch

    return {
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "cpu": {
            "name": _cpu_name(),
            "logical_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "ram_bytes": _ram_bytes(),
        "allocator": allocator_settings(),
        "gpus": torch_gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "versions": {
            "energybench": energybench.__version__,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        },
        "energybench_commit": git_commit(),
    }
