"""vectorbt on the benchmark workload (run with bench/.venv-peers' Python).

The signals are computed on close with vectorbt's own moving averages (``vbt.MA.run``) and the
crossing rule of BENCHMARK.md; each signal is then shifted one bar forward and executed at that
bar's open (``Portfolio.from_signals(..., price=open)``), which is the next-open fill, and a
signal on the last bar is shifted out of the data. ``size=10`` units (``size_type="amount"``),
long only, no fees, no slippage, cash 1,000,000. Round trips and PnL are vectorbt's closed trades.

``loop_s`` is the first call in the process: signals plus ``from_signals``, including numba's
compilation of vectorbt's kernels (that is what a user pays). The same call is then repeated and
reported as ``warm_loop_s`` (kernels compiled), with its own results checked against the first.
"""

from __future__ import annotations

from _common import FAST, QUANTITY, SLOW, clock, parse_args, report

T0 = clock()
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import vectorbt as vbt  # noqa: E402

IMPORT_S = clock() - T0


def backtest(close: pd.Series, open_: pd.Series, fast: int = FAST, slow: int = SLOW):
    """Signals on close, fills at the next bar's open; returns the portfolio."""
    d = vbt.MA.run(close, fast).ma - vbt.MA.run(close, slow).ma
    prev = d.shift(1)
    up = (d > 0) & (prev <= 0)
    down = (d < 0) & (prev >= 0)
    return vbt.Portfolio.from_signals(
        close,
        entries=up.shift(1, fill_value=False),
        exits=down.shift(1, fill_value=False),
        price=open_,
        size=QUANTITY,
        size_type="amount",
        direction="longonly",
        init_cash=1_000_000.0,
        fees=0.0,
        slippage=0.0,
        freq="1min",
    )


def closed_trades(portfolio) -> tuple[int, float]:
    records = portfolio.trades.closed.records
    pnl = ((records["exit_price"] - records["entry_price"]) * records["size"]).sum()
    return len(records), float(pnl)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    t0 = clock()
    bars = pd.read_parquet(args.data)
    # A tz-naive (UTC) index: with a tz-aware one, vectorbt's shape checks convert the index to
    # an object array of Timestamps on every call, which costs seconds per million bars.
    index = pd.to_datetime(bars["ts"].to_numpy())
    close = pd.Series(bars["close"].to_numpy(), index=index, name="close")
    open_ = pd.Series(bars["open"].to_numpy(), index=index, name="open")
    setup_s = clock() - t0

    t1 = clock()
    portfolio = backtest(close, open_)
    loop_s = clock() - t1

    t2 = clock()
    round_trips, pnl = closed_trades(portfolio)
    post_s = clock() - t2

    t3 = clock()
    warm = backtest(close, open_)
    warm_loop_s = clock() - t3
    if closed_trades(warm) != (round_trips, pnl) or not np.isfinite(pnl):
        raise SystemExit("vectorbt: the warm call disagrees with the first call")

    report(
        engine="vectorbt",
        version=version("vectorbt"),
        bars=len(close),
        round_trips=round_trips,
        pnl=pnl,
        import_s=IMPORT_S,
        setup_s=setup_s,
        loop_s=loop_s,
        post_s=post_s,
        warm_loop_s=warm_loop_s,
    )


if __name__ == "__main__":
    main()
