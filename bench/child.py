"""What the benchmarks that measure in a child process share: starting one, and its peak RSS.

A child process runs ``python -m bench.NAME MODE ARGS…`` from the repository root and writes
its figures as one JSON object to stdout.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def peak_mb() -> float:
    """This process's peak RSS, in MB.

    ``VmHWM`` where Linux gives it: ``ru_maxrss`` of a child also counts the parent's pages
    the fork copied before ``exec`` (the bench driver's, here).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(module: str, mode: str, *args: str) -> dict[str, Any]:
    """Run ``python -m MODULE MODE ARGS…`` and return the JSON object it printed."""
    done = subprocess.run(
        [sys.executable, "-m", module, mode, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {mode} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
