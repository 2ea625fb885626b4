"""backtrader on the benchmark workload (run with bench/.venv-peers' Python).

Configuration: ``Cerebro(stdstats=False)`` (no default observers: nothing here reads them),
data preloaded from a pandas frame (``PandasData``), cash 1,000,000, no commission. Default
market orders, which backtrader executes at the next bar's open; an order placed on the last
bar never executes. The SMAs are backtrader's ``SimpleMovingAverage`` over close; ``next``
tests the crossing rule of BENCHMARK.md on their difference. Round trips and PnL come from the
closed trades backtrader reports to ``notify_trade`` (``trade.pnl`` is gross: no commission).
``loop_s`` is ``cerebro.run()``.
"""

from __future__ import annotations

from _common import FAST, QUANTITY, SLOW, clock, parse_args, report

T0 = clock()
from importlib.metadata import version  # noqa: E402

import backtrader as bt  # noqa: E402
import pandas as pd  # noqa: E402

IMPORT_S = clock() - T0


class SmaCross(bt.Strategy):
    def __init__(self) -> None:
        fast = bt.indicators.SimpleMovingAverage(self.data.close, period=FAST)
        slow = bt.indicators.SimpleMovingAverage(self.data.close, period=SLOW)
        self.diff = fast - slow
        self.round_trips = 0
        self.pnl = 0.0

    def next(self) -> None:
        d, prev = self.diff[0], self.diff[-1]
        if not self.position:
            if d > 0 >= prev:
                self.buy(size=QUANTITY)
        elif d < 0 <= prev:
            self.close()

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            self.round_trips += 1
            self.pnl += trade.pnl


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    t0 = clock()
    bars = pd.read_parquet(args.data)
    frame = pd.DataFrame(
        {
            "open": bars["open"].to_numpy(),
            "high": bars["high"].to_numpy(),
            "low": bars["low"].to_numpy(),
            "close": bars["close"].to_numpy(),
            "volume": bars["volume"].to_numpy(),
        },
        index=pd.to_datetime(bars["ts"].to_numpy()),  # naive UTC: backtrader's own convention
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(1_000_000.0)
    setup_s = clock() - t0

    t1 = clock()
    (strategy,) = cerebro.run()
    loop_s = clock() - t1

    report(
        engine="backtrader",
        version=version("backtrader"),
        bars=len(frame),
        round_trips=strategy.round_trips,
        pnl=strategy.pnl,
        import_s=IMPORT_S,
        setup_s=setup_s,
        loop_s=loop_s,
        post_s=0.0,
    )


if __name__ == "__main__":
    main()
