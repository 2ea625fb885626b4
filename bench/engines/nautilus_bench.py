"""NautilusTrader on the benchmark workload (run with bench/.venv-peers' Python).

NautilusTrader fills a market order against the simulated venue's current book at the moment the
order arrives, so with bars alone a market order placed on a bar fills at that bar's close. To
fill at the next bar's open, as BENCHMARK.md requires, the data has two streams:

* 1-minute ``LAST`` bars, stamped at their close (open time + 60 s, Nautilus' convention), which
  drive the strategy and its two ``SimpleMovingAverage`` indicators (Nautilus' own, over close);
* one quote per bar at that bar's **open** (bid = ask = open), stamped 1 ns after the bar opens,
  i.e. just after the previous bar closed; the quotes alone move the venue's book
  (``bar_execution=False``).

On a crossing, ``on_bar`` only notes the action; the next quote, the next bar's open, submits the
market order, which fills at that quote. After the last bar there is no quote, so a signal on the
last bar is not filled. Venue: a cash account with 1,000,000 USD, netting OMS, an equity
instrument on a 0.00001 tick with no fees; logging at ERROR. Round trips and PnL come from the
fills Nautilus reports (``on_order_filled``), paired buy → sell.

``loop_s`` is ``BacktestEngine.run()``, which includes Nautilus' post-run analysis (its default,
``run_analysis=True``); ``strategy_loop_s`` is the part between the strategy's start and stop.
"""

from __future__ import annotations

from _common import FAST, QUANTITY, SLOW, clock, parse_args, report

T0 = clock()
from decimal import Decimal  # noqa: E402
from importlib.metadata import version  # noqa: E402

import pandas as pd  # noqa: E402
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig  # noqa: E402
from nautilus_trader.config import LoggingConfig, StrategyConfig  # noqa: E402
from nautilus_trader.indicators import SimpleMovingAverage  # noqa: E402
from nautilus_trader.model.currencies import USD  # noqa: E402
from nautilus_trader.model.data import Bar, BarType, QuoteTick  # noqa: E402
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide  # noqa: E402
from nautilus_trader.model.events import OrderFilled  # noqa: E402
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue  # noqa: E402
from nautilus_trader.model.instruments import Equity  # noqa: E402
from nautilus_trader.model.objects import Money, Price, Quantity  # noqa: E402
from nautilus_trader.persistence.wranglers import (  # noqa: E402
    BarDataWrangler,
    QuoteTickDataWrangler,
)
from nautilus_trader.trading.strategy import Strategy  # noqa: E402

IMPORT_S = clock() - T0

MINUTE_NS = 60_000_000_000
VENUE = Venue("SIM")
INSTRUMENT_ID = InstrumentId(Symbol("BENCH"), VENUE)
BAR_TYPE = BarType.from_str(f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL")


class SmaCrossConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    trade_size: Decimal


class SmaCross(Strategy):
    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        self.fast = SimpleMovingAverage(FAST)
        self.slow = SimpleMovingAverage(SLOW)
        self.prev_d: float | None = None
        self.long = False
        self.pending: OrderSide | None = None
        self.fills: list[tuple[OrderSide, float]] = []
        self.started = self.stopped = 0.0

    def on_start(self) -> None:
        self.started = clock()
        self.quantity = Quantity.from_str(str(self.config.trade_size))
        self.register_indicator_for_bars(self.config.bar_type, self.fast)
        self.register_indicator_for_bars(self.config.bar_type, self.slow)
        self.subscribe_bars(self.config.bar_type)
        self.subscribe_quote_ticks(self.config.instrument_id)

    def on_bar(self, bar: Bar) -> None:
        if not self.slow.initialized:
            return
        d = self.fast.value - self.slow.value
        prev, self.prev_d = self.prev_d, d
        if prev is None:
            return
        if not self.long and self.pending is None and d > 0 >= prev:
            self.pending = OrderSide.BUY
        elif self.long and self.pending is None and d < 0 <= prev:
            self.pending = OrderSide.SELL

    def on_quote_tick(self, tick: QuoteTick) -> None:
        if self.pending is None:
            return
        side, self.pending = self.pending, None
        self.long = side == OrderSide.BUY
        order = self.order_factory.market(self.config.instrument_id, side, self.quantity)
        self.submit_order(order)

    def on_order_filled(self, event: OrderFilled) -> None:
        self.fills.append((event.order_side, event.last_px.as_double()))

    def on_stop(self) -> None:
        self.stopped = clock()


def closed_round_trips(fills: list[tuple[OrderSide, float]]) -> tuple[int, float]:
    """Pair each buy with the sell that follows it; a buy left open at the end is not counted."""
    round_trips, pnl, entry = 0, 0.0, None
    for side, price in fills:
        if side == OrderSide.BUY:
            if entry is not None:
                raise SystemExit("nautilus: two buys in a row; the strategy is long only")
            entry = price
        else:
            if entry is None:
                raise SystemExit("nautilus: a sell while flat; the strategy is long only")
            round_trips += 1
            pnl += (price - entry) * QUANTITY
            entry = None
    return round_trips, pnl


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    t0 = clock()
    bars = pd.read_parquet(args.data)
    open_time = pd.to_datetime(bars["ts"].to_numpy(), utc=True)
    instrument = Equity(
        instrument_id=INSTRUMENT_ID,
        raw_symbol=Symbol("BENCH"),
        currency=USD,
        price_precision=5,
        price_increment=Price.from_str("0.00001"),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
    )
    bar_frame = pd.DataFrame(
        {c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
        index=open_time + pd.Timedelta(minutes=1),  # a bar is stamped at its close
    )
    quote_frame = pd.DataFrame(
        {"bid_price": bars["open"].to_numpy(), "ask_price": bars["open"].to_numpy()},
        index=open_time + pd.Timedelta(nanoseconds=1),  # just after the previous bar's close
    )
    engine = BacktestEngine(
        BacktestEngineConfig(trader_id="BENCH-001", logging=LoggingConfig(log_level="ERROR"))
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=USD,
        starting_balances=[Money(1_000_000, USD)],
        bar_execution=False,
    )
    engine.add_instrument(instrument)
    engine.add_data(BarDataWrangler(BAR_TYPE, instrument).process(bar_frame))
    engine.add_data(QuoteTickDataWrangler(instrument).process(quote_frame))
    strategy = SmaCross(
        SmaCrossConfig(instrument_id=INSTRUMENT_ID, bar_type=BAR_TYPE, trade_size=Decimal(QUANTITY))
    )
    engine.add_strategy(strategy)
    setup_s = clock() - t0

    t1 = clock()
    engine.run()
    loop_s = clock() - t1

    t2 = clock()
    round_trips, pnl = closed_round_trips(strategy.fills)
    post_s = clock() - t2
    report(
        engine="nautilus_trader",
        version=version("nautilus_trader"),
        bars=len(bar_frame),
        round_trips=round_trips,
        pnl=pnl,
        import_s=IMPORT_S,
        setup_s=setup_s,
        loop_s=loop_s,
        post_s=post_s,
        strategy_loop_s=strategy.stopped - strategy.started,
    )


if __name__ == "__main__":
    main()
