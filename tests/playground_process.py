"""`nablanet serve` started as a user starts it, for the tests: a process on a free port of 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys

import pytest


def start_playground(runs, *options: str) -> tuple[subprocess.Popen, str]:
    """Start `nablanet serve --port 0 --runs RUNS [OPTIONS]`; return the process and the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nablanet.app.cli", "serve", "--port", "0", "--runs", str(runs), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("nablanet playground at "):
            process.printed = lines  # type: ignore[attr-defined]
            return process, line.split(" at ")[1].split()[0]
    pytest.fail(f"the server did not start: {''.join(lines)}{process.stderr.read()}")
