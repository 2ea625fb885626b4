"""vectorbt on the 1,000-combination research grid (run with bench/.venv-peers' Python).

The grid (fast 5..100 step 5 × slow 110..600 step 10) with BENCHMARK.md's rules, configured as
in ``vectorbt_sweep.py``: one ``vbt.MA.run`` per side with a list of windows (one column per
combination), the crossing rule on the difference, signals shifted one bar and executed at that
bar's open by ``Portfolio.from_signals(close, entries, exits, price=open, size=10,
size_type="amount", direction="longonly", init_cash=1e6)``.

1,000 columns of 1M bars do not fit in memory at once (every float64 column is 8 MB, and
vectorbt holds several per column), so the grid runs in chunks of ``--chunk`` combinations, one
``from_signals`` per chunk; a chunk's time covers its signals, ``from_signals`` and reading its
trades (closed-trade count and PnL, and the final PnL, open trade marked at the last close, for
every column: what a sweep needs to rank combinations). The grid's time is the sum of its
chunks' times.

``first_s`` is the first call in the process, one chunk on the first ``--warmup-bars`` bars: it
pays for numba compiling vectorbt's kernels. ``warm_s`` holds ``--repeat`` passes over the whole
grid. The line printed holds ``results``: ``[fast, slow, closed trades, closed PnL, final PnL,
open at the end]`` for every combination.
"""

from __future__ import annotations

import argparse
import gc
import resource

from _common import QUANTITY, clock, emit

T0 = clock()
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import vectorbt as vbt  # noqa: E402

IMPORT_S = clock() - T0

GRID_FAST = tuple(range(5, 101, 5))
GRID_SLOW = tuple(range(110, 601, 10))
INITIAL_CASH = 1_000_000.0


def chunk_results(close: pd.Series, open_: pd.Series, grid: list[tuple[int, int]]) -> list[list]:
    """One ``from_signals`` over ``grid``'s columns and every column's answer."""
    fasts = [fast for fast, _ in grid]
    slows = [slow for _, slow in grid]
    d = (
        vbt.MA.run(close, window=fasts).ma.to_numpy()
        - vbt.MA.run(close, window=slows).ma.to_numpy()
    )
    prev = np.vstack([np.full((1, d.shape[1]), np.nan), d[:-1]])
    up = (d > 0) & (prev <= 0)
    down = (d < 0) & (prev >= 0)
    del d, prev
    no_signal = np.zeros((1, up.shape[1]), dtype=bool)
    columns = pd.MultiIndex.from_arrays([fasts, slows], names=["fast", "slow"])
    entries = pd.DataFrame(np.vstack([no_signal, up[:-1]]), index=close.index, columns=columns)
    exits = pd.DataFrame(np.vstack([no_signal, down[:-1]]), index=close.index, columns=columns)
    del up, down
    portfolio = vbt.Portfolio.from_signals(
        close,
        entries=entries,
        exits=exits,
        price=open_,
        size=QUANTITY,
        size_type="amount",
        direction="longonly",
        init_cash=INITIAL_CASH,
        fees=0.0,
        slippage=0.0,
        freq="1min",
    )
    records = portfolio.trades.records  # open trades are marked at the last close
    columns_ = records["col"].to_numpy()
    pnl = ((records["exit_price"] - records["entry_price"]) * records["size"]).to_numpy()
    closed = (records["status"] == 1).to_numpy()  # TradeStatus.Closed
    k = len(grid)
    counts = np.bincount(columns_[closed], minlength=k)
    closed_pnl = np.bincount(columns_[closed], weights=pnl[closed], minlength=k)
    final_pnl = np.bincount(columns_, weights=pnl, minlength=k)
    open_end = np.bincount(columns_[~closed], minlength=k)
    return [
        [f, s, int(n), float(c), float(p), int(o)]
        for (f, s), n, c, p, o in zip(grid, counts, closed_pnl, final_pnl, open_end, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=100, help="combinations per from_signals")
    parser.add_argument("--warmup-bars", type=int, default=20_000)
    args = parser.parse_args()

    t0 = clock()
    bars = pd.read_parquet(args.data)
    index = pd.to_datetime(bars["ts"].to_numpy())  # tz-naive UTC, see vectorbt_bench.py
    close = pd.Series(bars["close"].to_numpy(), index=index, name="close")
    open_ = pd.Series(bars["open"].to_numpy(), index=index, name="open")
    del bars
    grid = [(fast, slow) for fast in GRID_FAST for slow in GRID_SLOW]
    chunks = [grid[i : i + args.chunk] for i in range(0, len(grid), args.chunk)]
    setup_s = clock() - t0

    w = min(args.warmup_bars, len(close))
    t1 = clock()
    chunk_results(close.iloc[:w], open_.iloc[:w], chunks[0])
    first_s = clock() - t1
    gc.collect()

    warm_s, chunk_s, passes = [], [], []
    for _ in range(args.repeat):
        results, times = [], []
        for chunk in chunks:
            t2 = clock()
            results += chunk_results(close, open_, chunk)
            times.append(clock() - t2)
            gc.collect()  # outside the timed region: the next chunk starts from a clean heap
        warm_s.append(sum(times))
        chunk_s.append(times)
        passes.append(results)
    if any(p != passes[0] for p in passes[1:]):
        raise SystemExit("vectorbt grid: the repeats disagree with each other")

    emit(
        {
            "engine": "vectorbt",
            "label": f"vectorbt from_signals ({len(chunks)} chunks of {args.chunk})",
            "version": version("vectorbt"),
            "bars": len(close),
            "combos": len(grid),
            "calls": len(chunks),
            "chunk": args.chunk,
            "import_s": IMPORT_S,
            "setup_s": setup_s,
            "warmup_bars": w,
            "first_s": first_s,
            "warm_s": warm_s,
            "chunk_s": chunk_s,
            "rss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "results": passes[0],
        }
    )


if __name__ == "__main__":
    main()
