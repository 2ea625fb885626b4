"""backtesting.py on the benchmark workload (run with bench/.venv-peers' Python).

Configuration: ``Backtest(..., cash=1_000_000, commission=0, spread=0)`` with the defaults
``trade_on_close=False`` (market orders fill at the next bar's open), ``hedging=False``,
``exclusive_orders=False`` and ``finalize_trades=False`` (a position open at the end is not a
closed trade). The SMAs are ``self.I`` indicators over close, computed by pandas in ``init``;
``next`` tests the crossing rule of BENCHMARK.md on them. ``loop_s`` is ``Backtest.run()``.
"""

from __future__ import annotations

from _common import FAST, QUANTITY, SLOW, clock, parse_args, report

T0 = clock()
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from backtesting import Backtest, Strategy  # noqa: E402

IMPORT_S = clock() - T0


def _sma(values: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(values).rolling(window).mean().to_numpy()


class SmaCross(Strategy):
    def init(self) -> None:
        close = self.data.Close
        self.diff = self.I(lambda c: _sma(c, FAST) - _sma(c, SLOW), close, name="d")

    def next(self) -> None:
        d, prev = self.diff[-1], self.diff[-2]
        if not self.position:
            if d > 0 >= prev:
                self.buy(size=QUANTITY)
        elif d < 0 <= prev:
            self.position.close()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    t0 = clock()
    bars = pd.read_parquet(args.data)
    frame = pd.DataFrame(
        {
            "Open": bars["open"].to_numpy(),
            "High": bars["high"].to_numpy(),
            "Low": bars["low"].to_numpy(),
            "Close": bars["close"].to_numpy(),
            "Volume": bars["volume"].to_numpy(),
        },
        index=pd.to_datetime(bars["ts"].to_numpy(), utc=True),
    )
    backtest = Backtest(frame, SmaCross, cash=1_000_000, commission=0.0, spread=0.0)
    setup_s = clock() - t0

    t1 = clock()
    stats = backtest.run()
    loop_s = clock() - t1

    t2 = clock()
    trades = stats["_trades"]
    pnl = ((trades["ExitPrice"] - trades["EntryPrice"]) * trades["Size"]).sum()
    post_s = clock() - t2
    report(
        engine="backtesting.py",
        version=version("backtesting"),
        bars=len(frame),
        round_trips=len(trades),
        pnl=pnl,
        import_s=IMPORT_S,
        setup_s=setup_s,
        loop_s=loop_s,
        post_s=post_s,
    )


if __name__ == "__main__":
    main()
