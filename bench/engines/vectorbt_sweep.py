"""vectorbt on the benchmark sweep (run with bench/.venv-peers' Python).

All 100 (fast, slow) combinations of BENCHMARK.md in ONE call, vectorbt's way: one
``vbt.MA.run`` per side with a list of windows (one column per combination), the crossing rule
of BENCHMARK.md on the difference, signals shifted one bar and executed at that bar's open by a
single ``Portfolio.from_signals`` over the 100 columns (as in ``vectorbt_bench.py``). Combinations
with fast >= slow are run too (BENCHMARK.md counts 100).

``first_s`` is the first call in the process (numba compilation included), ``warm_s`` the same
call repeated. Per-combination round trips and PnL are printed for ``run.py`` to compare.
"""

from __future__ import annotations

from _common import QUANTITY, clock, emit, parse_args, sweep_grid

T0 = clock()
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import vectorbt as vbt  # noqa: E402

IMPORT_S = clock() - T0


def sweep(close: pd.Series, open_: pd.Series, grid: list[tuple[int, int]]):
    fasts = [fast for fast, _ in grid]
    slows = [slow for _, slow in grid]
    d = (
        vbt.MA.run(close, window=fasts).ma.to_numpy()
        - vbt.MA.run(close, window=slows).ma.to_numpy()
    )
    prev = np.vstack([np.full((1, d.shape[1]), np.nan), d[:-1]])
    up = (d > 0) & (prev <= 0)
    down = (d < 0) & (prev >= 0)
    no_signal = np.zeros((1, d.shape[1]), dtype=bool)
    columns = pd.MultiIndex.from_arrays([fasts, slows], names=["fast", "slow"])
    entries = pd.DataFrame(np.vstack([no_signal, up[:-1]]), index=close.index, columns=columns)
    exits = pd.DataFrame(np.vstack([no_signal, down[:-1]]), index=close.index, columns=columns)
    return vbt.Portfolio.from_signals(
        close,
        entries=entries,
        exits=exits,
        price=open_,
        size=QUANTITY,
        size_type="amount",
        direction="longonly",
        init_cash=1_000_000.0,
        fees=0.0,
        slippage=0.0,
        freq="1min",
    )


def per_combination(portfolio, grid: list[tuple[int, int]]) -> list[list]:
    records = portfolio.trades.closed.records
    pnl = (records["exit_price"] - records["entry_price"]) * records["size"]
    columns = records["col"].to_numpy()
    counts = np.bincount(columns, minlength=len(grid))
    sums = np.bincount(columns, weights=pnl.to_numpy(), minlength=len(grid))
    return [[f, s, int(n), float(p)] for (f, s), n, p in zip(grid, counts, sums, strict=True)]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    t0 = clock()
    bars = pd.read_parquet(args.data)
    index = pd.to_datetime(bars["ts"].to_numpy())  # tz-naive UTC, see vectorbt_bench.py
    close = pd.Series(bars["close"].to_numpy(), index=index, name="close")
    open_ = pd.Series(bars["open"].to_numpy(), index=index, name="open")
    grid = sweep_grid()
    setup_s = clock() - t0

    t1 = clock()
    first = sweep(close, open_, grid)
    first_s = clock() - t1
    results = per_combination(first, grid)

    t2 = clock()
    warm = sweep(close, open_, grid)
    warm_s = clock() - t2
    if per_combination(warm, grid) != results:
        raise SystemExit("vectorbt sweep: the warm call disagrees with the first call")

    emit(
        {
            "engine": "vectorbt",
            "label": "vectorbt (1 call, 100 columns)",
            "version": version("vectorbt"),
            "bars": len(close),
            "combos": len(grid),
            "calls": 1,
            "import_s": IMPORT_S,
            "setup_s": setup_s,
            "first_s": first_s,
            "warm_s": warm_s,
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
