"""What every engine script shares: the command line, the timer and the one-line JSON report.

Engine scripts run in two different environments (the workspace for tradeloom, bench/.venv-peers
for the peers), so this module imports nothing beyond the standard library.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

QUANTITY = 10
"""Units bought on a cross up and sold on the next cross down (BENCHMARK.md)."""
FAST, SLOW = 10, 30
"""The SMA windows of close."""
SWEEP_FAST = tuple(range(5, 51, 5))
SWEEP_SLOW = tuple(range(20, 201, 20))
"""The sweep's grid: fast 5..50 step 5 × slow 20..200 step 20, 100 combinations (BENCHMARK.md)."""

clock = time.perf_counter
"""Durations only; every timed phase is measured with this monotonic clock."""


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="bars_<n>.parquet written by gen_data.py")
    return parser.parse_args()


def sweep_grid() -> list[tuple[int, int]]:
    """Every (fast, slow) pair of the sweep, fast-major."""
    return [(fast, slow) for fast in SWEEP_FAST for slow in SWEEP_SLOW]


def emit(line: dict[str, Any]) -> None:
    """Print one JSON line on stdout for ``bench/run.py``."""
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def report(
    *,
    engine: str,
    version: str,
    bars: int,
    round_trips: int,
    pnl: float,
    import_s: float,
    setup_s: float,
    loop_s: float,
    post_s: float,
    **extra: Any,
) -> None:
    """Print the one JSON line that ``bench/run.py`` reads from the engine's stdout."""
    line = {
        "engine": engine,
        "version": version,
        "bars": int(bars),
        "round_trips": int(round_trips),
        "pnl": float(pnl),
        "import_s": float(import_s),
        "setup_s": float(setup_s),
        "loop_s": float(loop_s),
        "post_s": float(post_s),
        **extra,
    }
    emit(line)
