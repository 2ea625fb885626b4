"""The exact answer to the benchmark workload, in integer ticks, for any (fast, slow).

Prices lie on a 0.00001 tick, so ``close × 10⁵`` is an exact integer, and the sign of
``SMA_fast − SMA_slow`` is the sign of ``slow · Σfast − fast · Σslow``, an exact int64. No float
rounding decides a crossing here, so exact ties (``d == 0``) fall where BENCHMARK.md's rule puts
them: a zero counts as "≤ 0" for a cross up and "≥ 0" for a cross down. Fills are at the next
bar's open; a signal on the last bar is not filled; PnL is summed in float over the fill prices,
as every engine does.

    uv run python bench/engines/reference.py --data bench/data/bars_100000.parquet [--sweep]

prints one JSON line: ``{"bars", "results": [[fast, slow, round_trips, pnl, ties], ...]}`` where
``ties`` counts the bars with ``d == 0`` exactly. ``bench/run.py`` checks the engines against it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from _common import FAST, QUANTITY, SLOW, sweep_grid

TICKS_PER_UNIT = 100_000


def exact(
    close_ticks: np.ndarray, open_: np.ndarray, fast: int, slow: int
) -> tuple[int, float, int]:
    """(closed round trips, PnL, exact ties) of the long-only crossover on integer closes."""
    n = len(close_ticks)
    sums = np.concatenate(([0], np.cumsum(close_ticks)))
    t = np.arange(slow - 1, n)  # bars where both averages exist
    sum_fast = sums[t + 1] - sums[t + 1 - fast]
    sum_slow = sums[t + 1] - sums[t + 1 - slow]
    sign = np.sign(slow * sum_fast - fast * sum_slow)
    prev, cur, bar = sign[:-1], sign[1:], t[1:]
    up = bar[(cur > 0) & (prev <= 0)]
    down = bar[(cur < 0) & (prev >= 0)]
    events = sorted([(int(b), 1) for b in up] + [(int(b), -1) for b in down])
    round_trips, pnl, entry = 0, 0.0, None
    for b, direction in events:
        if b + 1 >= n:  # a signal on the last bar is not filled
            break
        if direction > 0 and entry is None:
            entry = open_[b + 1]
        elif direction < 0 and entry is not None:
            pnl += (open_[b + 1] - entry) * QUANTITY
            round_trips += 1
            entry = None
    return round_trips, float(pnl), int((sign == 0).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--sweep", action="store_true", help="the sweep's grid, not 10/30 alone")
    args = parser.parse_args()
    bars = pd.read_parquet(args.data, columns=["open", "close"])
    close = bars["close"].to_numpy()
    close_ticks = np.round(close * TICKS_PER_UNIT).astype(np.int64)
    if not np.allclose(close_ticks / TICKS_PER_UNIT, close, rtol=0, atol=1e-9):
        raise SystemExit(f"{args.data}: closes are not on a 0.00001 tick")
    open_ = bars["open"].to_numpy()
    grid = [(f, s) for f, s in sweep_grid() if f < s] if args.sweep else [(FAST, SLOW)]
    results = [[f, s, *exact(close_ticks, open_, f, s)] for f, s in grid]
    print(json.dumps({"bars": len(close), "results": results}))


if __name__ == "__main__":
    main()
