"""tradeloom's vector engine on the benchmark sweep (run with the workspace's Python).

The 90 combinations of BENCHMARK.md's grid that ``SmaCrossover`` accepts (fast < slow; the other
10 are configuration errors in tradeloom) as one ``tradeloom.vector.run_signals`` call per
combination, which is what any user can write today. ``first_s`` is the first pass over the grid
(numba compilation or its on-disk cache included), ``warm_s`` a second pass. Per-combination
round trips and PnL are printed for ``run.py`` to compare with vectorbt's.

``tradeloom.vector.sweep`` (one call over the whole grid, in parallel on every core), when it
exists, is timed first, in the fresh process (``sweep_first_s``), then again (``sweep_warm_s``),
called as ``sweep(market, SmaCrossover, {"fast": [...], "slow": [...], "quantity": [10]})``. Its
rows give closed trades but not their PnL, so ``sweep_results`` holds ``[fast, slow,
num_trades]`` for the combinations it accepted. If the call fails, the error is reported and the
per-call figures stand.
"""

from __future__ import annotations

from _common import QUANTITY, SWEEP_FAST, SWEEP_SLOW, clock, emit, parse_args, sweep_grid

T0 = clock()
from importlib.metadata import version  # noqa: E402

import tradeloom.vector as vector  # noqa: E402
from tradeloom.data import ParquetSource  # noqa: E402
from tradeloom_strategies import SmaCrossover  # noqa: E402

IMPORT_S = clock() - T0


def one_pass(market, grid: list[tuple[int, int]]) -> list[list]:
    results = []
    for fast, slow in grid:
        strategy = SmaCrossover(fast=fast, slow=slow, quantity=QUANTITY)
        result = vector.run_signals(market, strategy, fallback=False)
        trades = result.trades
        pnl = ((trades["exit_price"] - trades["entry_price"]) * trades["quantity"]).sum()
        results.append([fast, slow, len(trades), float(pnl)])
    return results


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    t0 = clock()
    market = ParquetSource(path=args.data, symbol="BENCH").load()
    grid = [(fast, slow) for fast, slow in sweep_grid() if fast < slow]
    setup_s = clock() - t0

    line: dict = {}
    try:
        sweep = vector.sweep
    except (AttributeError, ImportError):  # not there yet
        sweep = None
    if sweep is not None:
        grid_params = {"fast": list(SWEEP_FAST), "slow": list(SWEEP_SLOW), "quantity": [QUANTITY]}
        try:
            t3 = clock()
            frame = sweep(market, SmaCrossover, grid_params)
            line["sweep_first_s"] = clock() - t3
            t4 = clock()
            sweep(market, SmaCrossover, grid_params)
            line["sweep_warm_s"] = clock() - t4
            valid = frame[frame["error"].isna()]
            line["sweep_combos"] = len(valid)
            line["sweep_results"] = [
                [int(f), int(s), int(n)]
                for f, s, n in zip(valid["fast"], valid["slow"], valid["num_trades"], strict=True)
            ]
        except Exception as exc:  # an API in the making: report it, keep the per-call figures
            line["sweep_error"] = f"{type(exc).__name__}: {exc}"
    t1 = clock()
    results = one_pass(market, grid)
    first_s = clock() - t1
    t2 = clock()
    if one_pass(market, grid) != results:
        raise SystemExit("tradeloom-vector sweep: the second pass disagrees with the first")
    warm_s = clock() - t2

    line |= {
        "engine": "tradeloom-vector",
        "label": "tradeloom-vector (run_signals × 90)",
        "version": version("tradeloom"),
        "bars": sum(len(bars) for bars in market.frames.values()),
        "combos": len(grid),
        "calls": len(grid),
        "import_s": IMPORT_S,
        "setup_s": setup_s,
        "first_s": first_s,
        "warm_s": warm_s,
        "results": results,
    }
    emit(line)


if __name__ == "__main__":
    main()
