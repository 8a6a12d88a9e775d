#!/usr/bin/env python3
"""Reality check of a running tradebus: same as `tradebus reality-check` (see --help).

Usage: .venv/bin/python scripts/reality_check.py [--json] [--watch SECONDS] [--latest | --run RUN_ID]
       [--probe-timeout SECONDS]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.cli import app  # noqa: E402

if __name__ == "__main__":
    app(["reality-check", *sys.argv[1:]])
