"""Run test helper modules as separate OS processes with the project's interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agents.runtime.supervisor import child_preexec

ROOT = Path(__file__).resolve().parents[2]


def spawn(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=child_preexec(),  # a killed test run leaves no process behind
    )
