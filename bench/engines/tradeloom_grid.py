"""tradeloom's vector engine on the 1,000-combination research grid (the workspace's Python).

``tradeloom.vector.sweep(market, SmaCrossover, {"fast": 5..100 step 5, "slow": 110..600 step
10, "quantity": [10]}, initial_cash=1e6)``: BENCHMARK.md's rules (long only, 10 units, market
orders filled at the next bar's open by the default simulated broker, no fees), 20 × 50 = 1,000
combinations, every one valid (fast < slow), in one call, in parallel on every core.

``first_s`` is the first call in the process, on the grid over the first ``--warmup-bars`` bars
only: it pays for loading (or compiling) the numba kernels and starting numba's threads, so the
timed calls that follow exclude them. ``warm_s`` holds ``--repeat`` calls on every bar.
``kernel_s`` is one more call of the same sweep through a subclass that only times
``fused_sweep`` (the compiled kernel, signals and simulation): what is left of a warm call is
Python around it (parameter validation, arrays, the result frame).

The line printed holds ``results``: ``[fast, slow, num_trades, final_equity - initial_cash]``
for every combination, and ``single``: ``tradeloom.vector.run_signals`` on ``--single``
combinations, ``[fast, slow, closed trades, closed PnL, final_equity - initial_cash]``.
"""

from __future__ import annotations

import argparse
import resource

from _common import QUANTITY, clock, emit

T0 = clock()
from importlib.metadata import version  # noqa: E402

import numba  # noqa: E402
import pandas as pd  # noqa: E402

import tradeloom.vector as vector  # noqa: E402
from tradeloom.data import ParquetSource  # noqa: E402
from tradeloom_strategies import SmaCrossover  # noqa: E402

IMPORT_S = clock() - T0

GRID_FAST = tuple(range(5, 101, 5))
GRID_SLOW = tuple(range(110, 601, 10))
INITIAL_CASH = 1_000_000.0


class _TimedSma(SmaCrossover):
    """SmaCrossover whose fused sweep kernel records its own duration (diagnostic only)."""

    kernel_s: float | None = None

    @classmethod
    def fused_sweep(cls, *args, **kwargs):  # type: ignore[override]
        t0 = clock()
        out = super().fused_sweep(*args, **kwargs)
        _TimedSma.kernel_s = clock() - t0
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup-bars", type=int, default=20_000)
    parser.add_argument("--single", nargs="*", default=["5/110", "100/600"], metavar="F/S")
    args = parser.parse_args()

    t0 = clock()
    market = ParquetSource(path=args.data, symbol="BENCH").load()
    bars = sum(len(frame) for frame in market.frames.values())
    ts = pd.read_parquet(args.data, columns=["ts"])["ts"].to_numpy()
    warmup_end = pd.Timestamp(int(ts[min(args.warmup_bars, len(ts)) - 1]), tz="UTC")
    grid = {"fast": list(GRID_FAST), "slow": list(GRID_SLOW), "quantity": [QUANTITY]}
    setup_s = clock() - t0

    t1 = clock()
    vector.sweep(market, SmaCrossover, grid, initial_cash=INITIAL_CASH, end=warmup_end)
    first_s = clock() - t1

    warm_s, frames = [], []
    for _ in range(args.repeat):
        t2 = clock()
        frame = vector.sweep(market, SmaCrossover, grid, initial_cash=INITIAL_CASH)
        warm_s.append(clock() - t2)
        frames.append(frame)
    rss_after_sweep = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def rows(frame: pd.DataFrame) -> list[list]:
        frame = frame.sort_values(["fast", "slow"])
        if frame["error"].notna().any():
            raise SystemExit(f"tradeloom grid: invalid combinations {frame[frame.error.notna()]}")
        return [
            [int(f), int(s), int(n), float(e) - INITIAL_CASH]
            for f, s, n, e in zip(
                frame["fast"], frame["slow"], frame["num_trades"], frame["final_equity"],
                strict=True,
            )
        ]  # fmt: skip

    results = rows(frames[0])
    if any(rows(f) != results for f in frames[1:]):
        raise SystemExit("tradeloom grid: the repeats disagree with each other")

    t3 = clock()
    vector.sweep(market, _TimedSma, grid, initial_cash=INITIAL_CASH)
    timed_total_s = clock() - t3

    single = []
    for pair in args.single:
        fast, slow = (int(x) for x in pair.split("/"))
        strategy = SmaCrossover(fast=fast, slow=slow, quantity=QUANTITY)
        result = vector.run_signals(market, strategy, initial_cash=INITIAL_CASH, fallback=False)
        trades = result.trades
        pnl = float(((trades["exit_price"] - trades["entry_price"]) * trades["quantity"]).sum())
        final = float(result.equity["equity"].iloc[-1]) - INITIAL_CASH
        single.append([fast, slow, len(trades), pnl, final])

    emit(
        {
            "engine": "tradeloom-vector",
            "label": "tradeloom sweep()",
            "version": version("tradeloom"),
            "bars": bars,
            "combos": len(results),
            "calls": 1,
            "threads": numba.get_num_threads(),
            "import_s": IMPORT_S,
            "setup_s": setup_s,
            "warmup_bars": min(args.warmup_bars, bars),
            "first_s": first_s,
            "warm_s": warm_s,
            "kernel_s": _TimedSma.kernel_s,
            "kernel_call_total_s": timed_total_s,
            "rss_after_sweep_mib": rss_after_sweep,
            "results": results,
            "single": single,
        }
    )


if __name__ == "__main__":
    main()
