"""Speed of the vector engine on the common benchmark workload (see BENCHMARK.md).

    uv run python /work/shared/bench/gen_data.py --out /tmp/bench --sizes 100000 1000000
    uv run python bench/vector_bench.py --data /tmp/bench

Prints one table: a single SMA(10, 30) run (quantity 10, long only, no costs) on 100k and 1M
bars and the 100-combination sweep (fast 5..50 step 5 × slow 20..200 step 20) on 100k bars,
each the median of ``--repeat`` warm calls; "loop" is the strategy's ``signals`` plus the
simulation kernel, "total" adds the result frames and metrics. The first call of each kind is
timed separately: with a warm numba cache (a second run of this script) it shows what a fresh
process pays to load the compiled kernels. The correct answers are checked on every run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXPECTED = {100_000: (1_926, -95.7042), 1_000_000: (19_689, -629.2533)}
GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 20)), "quantity": [10]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    clock = time.perf_counter

    t0 = clock()
    import numba

    from tradeloom.data import ParquetSource
    from tradeloom.vector import run_signals, sweep
    from tradeloom_strategies import SmaCrossover

    imports = clock() - t0
    markets = {}
    for n in EXPECTED:
        path = args.data / f"bars_{n}.parquet"
        if not path.exists():
            sys.exit(f"{path} is missing: run gen_data.py first (see this script's docstring)")
        markets[n] = ParquetSource(path=str(path), symbol="BENCH").load()

    def single(n: int) -> tuple[float, float]:
        started = clock()
        result = run_signals(markets[n], SmaCrossover(fast=10, slow=30, quantity=10))
        total = clock() - started
        trades = result.trades
        pnl = float(((trades.exit_price - trades.entry_price) * trades.quantity).sum())
        got = (len(trades), round(pnl, 4))
        if got != EXPECTED[n]:
            sys.exit(f"WRONG ANSWER on {n:,} bars: {got}, expected {EXPECTED[n]}")
        return result.timings["loop"], total

    def grid_sweep() -> tuple[float, float]:
        started = clock()
        table = sweep(markets[100_000], SmaCrossover, GRID)
        elapsed = clock() - started
        if len(table) != 100:
            sys.exit(f"sweep returned {len(table)} rows, expected 100")
        return elapsed, elapsed

    rows = []
    first_single = timed_first(single, 100_000)
    for n in EXPECTED:
        loops, totals = zip(*(single(n) for _ in range(args.repeat)), strict=True)
        loop, total = statistics.median(loops), statistics.median(totals)
        rows.append(
            (f"single run, {n:,} bars", loop, f"{n / loop / 1e6:,.1f} M bars/s", total,
             f"{n / total / 1e6:,.2f} M bars/s")
        )  # fmt: skip
    first_sweep = timed_first(grid_sweep)
    sweeps = [grid_sweep()[0] for _ in range(args.repeat)]
    elapsed = statistics.median(sweeps)
    work = 100 * 100_000
    valid = 90 * 100_000  # 10 combinations have fast >= slow and are refused, not simulated
    rows.append(
        ("sweep 100 × 100k bars", elapsed, f"{work / elapsed / 1e6:,.1f} M bar·combos/s",
         elapsed, f"{valid / elapsed / 1e6:,.1f} M valid bar·combos/s")
    )  # fmt: skip

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"tradeloom vector engine — medians of {args.repeat} warm calls; ", end="")
    print(f"{numba.get_num_threads()} numba threads on {os.cpu_count()} cores")
    header = ("workload", "loop s", "loop rate", "total s", "total rate")
    widths = (27, 9, 26, 9, 28)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for name, loop, loop_rate, total, total_rate in rows:
        cells = (name, f"{loop:.4f}", loop_rate, f"{total:.4f}", total_rate)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    warm_single = rows[0][3]
    print(
        f"first call in this process: single run {first_single:.3f} s "
        f"(+{first_single - warm_single:.3f} s over warm), sweep {first_sweep:.3f} s "
        f"(+{first_sweep - elapsed:.3f} s); imports {imports:.2f} s"
    )
    print(f"peak RSS {peak:,.0f} MiB; round trips and PnL checked against BENCHMARK.md")
    return 0


def timed_first(fn: Callable[..., tuple[float, float]], *args: object) -> float:
    """Wall time of the first call (includes loading or compiling the kernels)."""
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
