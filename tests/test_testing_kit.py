"""The contract kit itself: every contract check fails on a component broken the way it is
meant to catch (and the probes pass the honest twin of each broken component, so a failure is
the check working, not the check being impossible to pass).

The contract methods are called directly, as pytest would call them; the broken contract
classes are not named ``Test*``, so pytest does not collect them."""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from time import time as wall_time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ConfigDict, Field

from tradeloom.components import Params
from tradeloom.data import DatasetSource, DataSource, MarketData
from tradeloom.execution import SimulatedBroker
from tradeloom.model import Bar, Fill, OrderStatus, OrderUpdate
from tradeloom.risk import RiskRule
from tradeloom.risk.base import Reject
from tradeloom.strategy import Context, Strategy
from tradeloom.testing import (
    BrokerContract,
    ComponentContract,
    DataSourceContract,
    RiskRuleContract,
    StrategyContract,
)
from tradeloom.testing.strategies import perturb_after, wall_clock_reads
from tradeloom_strategies import SmaCrossover


def fails(check: Callable[[], object], *fragments: str) -> str:
    """Run a contract check; it must raise AssertionError whose message holds ``fragments``."""
    with pytest.raises(AssertionError) as info:
        check()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# --- strategies -----------------------------------------------------------------------------------


class _Flip(Strategy):
    """Long when the chosen close is above the previous one, flat otherwise."""

    class Params(Params):
        size: float = 10.0
        """Units to hold."""

    peek = False

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        closes = ctx.history(bar.symbol, 2)
        if len(closes) < 2:
            return
        here, before = closes[-1], closes[-2]
        if self.peek:  # the next bar's close, read from the engine's own copy of the data
            frame = ctx._engine.data.frames[bar.symbol]  # type: ignore[attr-defined]
            later = frame["close"][frame.index > ctx.now]
            if not len(later):
                return
            here, before = float(later.iloc[0]), closes[-1]
        ctx.order_target(bar.symbol, self.params.size if here > before else 0.0)


class _Peeking(_Flip):
    """Trades on the next bar's close."""

    peek = True


class _WallClock(_Flip):
    """Stamps each bar with the wall clock (an alias import of time.time)."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.stamp = wall_time()
        super().on_bar(ctx, bar)


class _DateTimeNow(_Flip):
    """Reads datetime.datetime.now() through the module."""

    def on_start(self, ctx: Context) -> None:
        self.started = datetime.datetime.now(datetime.UTC)


class _Random(_Flip):
    """Trades a random quantity (an unseeded generator)."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if random.random() < 0.2:
            ctx.order_target(bar.symbol, float(random.randint(1, 100)))


class _Idle(_Flip):
    """Never trades."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        return None


class _Loose(_Flip):
    """Its Params accept unknown fields and are mutable."""

    class Params(Params):
        model_config = ConfigDict(extra="allow", frozen=False)
        size: float = 10.0
        """Units to hold."""


class _Undocumented(_Flip):
    class Params(Params):
        size: float = Field(default=10.0)


class _PeekingSignals(SmaCrossover):
    """signals() computed on the closes shifted one bar back: tomorrow's close today."""

    def signals(self, data: Any) -> Any:
        import dataclasses

        ahead = np.roll(data.close, -1, axis=0)
        ahead[-1] = data.close[-1]
        return super().signals(dataclasses.replace(data, close=ahead, _rows={}))


class _LateSignals(SmaCrossover):
    """signals() one bar late compared with on_bar: the engines disagree."""

    def signals(self, data: Any) -> Any:
        out = super().signals(data)
        for array in out.arrays():
            array[1:] = array[:-1].copy()
            array[0] = False
        return out


def strategy_contract(cls: type[Strategy], **attrs: Any) -> StrategyContract:
    contract = type("Contract", (StrategyContract,), {"strategy_cls": cls, **attrs})
    return contract()


def test_lookahead_probe_fails_a_strategy_that_peeks_at_the_next_bar() -> None:
    message = fails(strategy_contract(_Peeking).test_no_lookahead, "look-ahead probe")
    assert "future replaced" in message
    strategy_contract(_Flip).test_no_lookahead()  # the honest twin passes


def test_lookahead_probe_leaves_the_past_alone() -> None:
    market = DatasetSource(name="us-stocks-daily", symbols=["IBM"]).load(
        pd.Timestamp("2010-01-01", tz="UTC"), pd.Timestamp("2010-12-31", tz="UTC")
    )
    frame = market.frames["IBM"]
    cut = int(frame.index[100].value)
    probe = perturb_after(market, cut).frames["IBM"]
    pd.testing.assert_frame_equal(probe.iloc[:101], frame.iloc[:101])
    after, before = probe.iloc[101:], frame.iloc[101:]
    assert (after["close"] != before["close"]).all()
    # every later move reversed: up where the data went down (relative to the cut's close)
    ref = frame["close"].iloc[100]
    assert (np.sign(after["close"] - ref) == -np.sign(before["close"] - ref)).all()
    assert (after["high"] >= after[["open", "close"]].max(axis=1)).all()
    assert (after["low"] <= after[["open", "close"]].min(axis=1)).all()
    assert (after["volume"] != before["volume"]).any()


def test_wall_clock_check_fails_a_strategy_that_reads_time() -> None:
    fails(
        strategy_contract(_WallClock).test_no_wall_clock_reads,
        "read the wall clock",
        "time.time() at",
        "test_testing_kit.py",
    )
    fails(
        strategy_contract(_DateTimeNow).test_no_wall_clock_reads,
        "datetime.datetime.now() at",
    )
    strategy_contract(_Flip).test_no_wall_clock_reads()


def test_wall_clock_reads_sees_every_import_style_and_allows_log_stamps() -> None:
    import logging
    import time
    from datetime import date
    from datetime import datetime as dt

    class Sub(dt):
        pass

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    with wall_clock_reads() as reads:
        time.time()
        wall_time()
        time.time_ns()
        dt.now()
        Sub.utcnow()
        date.today()
        logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        time.perf_counter()  # a duration, not the time of day: allowed
    assert record.created > 0
    names = [r.split("()")[0] for r in reads]
    assert len(names) == 6, reads
    assert names[:4] == ["time.time", "time.time", "time.time_ns", "datetime.datetime.now"]
    assert names[4].endswith("<locals>.Sub.utcnow") and names[5] == "datetime.date.today"
    assert all(":" in r and "test_testing_kit.py" in r for r in reads)


def test_determinism_check_fails_a_random_strategy() -> None:
    fails(strategy_contract(_Random).test_deterministic, "two identical runs", "differs")
    strategy_contract(_Flip).test_deterministic()


def test_backtest_check_fails_a_strategy_that_never_trades() -> None:
    fails(
        strategy_contract(_Idle).test_short_backtest_runs_and_returns_metrics,
        "placed 0 order(s)",
        "min_orders",
    )
    strategy_contract(_Idle, min_orders=0).test_short_backtest_runs_and_returns_metrics()


def test_params_checks_fail_loose_and_undocumented_params() -> None:
    fails(
        strategy_contract(_Loose).test_params_model_is_a_strict_pydantic_model,
        "accepts an unknown field",
    )
    fails(strategy_contract(_Undocumented).test_params_json_schema, "without a description: size")
    fails(
        strategy_contract(
            _Flip, params={"size": "lots"}
        ).test_params_model_is_a_strict_pydantic_model,
        "refuses the contract's params",
    )
    strategy_contract(_Flip).test_params_json_schema()


def test_signal_checks_fail_signals_that_peek_or_disagree_with_on_bar() -> None:
    params = {"fast": 5, "slow": 20}
    fails(
        strategy_contract(_PeekingSignals, params=params).test_signals_no_lookahead, "looks ahead"
    )
    fails(strategy_contract(_LateSignals, params=params).test_event_vector_parity, "parity FAILS")
    honest = strategy_contract(SmaCrossover, params=params)
    honest.test_signals_no_lookahead()
    honest.test_event_vector_parity()


def test_parity_is_skipped_with_a_reason_without_signals() -> None:
    with pytest.raises(pytest.skip.Exception, match="no signals"):
        strategy_contract(_Flip).test_event_vector_parity()


def test_a_contract_without_its_component_says_what_to_set() -> None:
    class Nothing(StrategyContract):
        pass

    with pytest.raises(TypeError, match=r"set strategy_type .* or strategy_cls"):
        Nothing().test_is_a_strategy()


def test_only_test_classes_are_collected() -> None:
    for base in (
        ComponentContract,
        StrategyContract,
        DataSourceContract,
        BrokerContract,
        RiskRuleContract,
    ):
        assert base.__test__ is False

    class TestMine(StrategyContract):
        strategy_type = "sma-crossover"

    class Helper(StrategyContract):
        pass

    class TestAbstract(StrategyContract):
        __test__ = False

    assert TestMine.__test__ is True
    assert Helper.__test__ is False
    assert TestAbstract.__test__ is False


def test_strategy_type_is_looked_up_in_the_plugin_host() -> None:
    class TestByName(StrategyContract):
        strategy_type = "donchian-breakout"

    from tradeloom_strategies import DonchianBreakout

    assert TestByName().component_class() is DonchianBreakout


# --- data sources ---------------------------------------------------------------------------------


def _frame(rows: int = 30) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=rows, freq="D", tz="UTC", name="ts")
    close = np.linspace(100.0, 130.0, rows)
    return pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1e3},
        index=index,
    )


class _GoodSource(DataSource):
    """Thirty synthetic daily bars of X."""

    def load(self, start: Any = None, end: Any = None) -> MarketData:
        return MarketData({"X": _frame()}).slice(start, end)


class _Unsorted(_GoodSource):
    def load(self, start: Any = None, end: Any = None) -> MarketData:
        frame = _frame()
        return MarketData({"X": frame.iloc[[*range(10, 30), *range(10)]]}).slice(None, None)


class _HighBelowClose(_GoodSource):
    def load(self, start: Any = None, end: Any = None) -> MarketData:
        frame = _frame()
        frame.iloc[5, frame.columns.get_loc("high")] = frame["close"].iloc[5] - 0.5
        return MarketData({"X": frame}).slice(start, end)


class _NaiveIndex(_GoodSource):
    def load(self, start: Any = None, end: Any = None) -> MarketData:
        frame = _frame()
        frame.index = frame.index.tz_localize(None)
        return MarketData({"X": frame})


class _IgnoresBounds(_GoodSource):
    def load(self, start: Any = None, end: Any = None) -> MarketData:
        return MarketData({"X": _frame()})


class _SharedCache(_GoodSource):
    cache = MarketData({"X": _frame()})

    def load(self, start: Any = None, end: Any = None) -> MarketData:
        return MarketData(dict(self.cache.frames))


def source_contract(cls: type[DataSource]) -> DataSourceContract:
    return type("Contract", (DataSourceContract,), {"source_cls": cls})()


def test_data_contract_fails_sources_that_break_the_invariants() -> None:
    check = "test_load_returns_valid_market_data"
    fails(getattr(source_contract(_Unsorted), check), "not sorted by time")
    fails(getattr(source_contract(_HighBelowClose), check), "high < max(open, close)")
    fails(getattr(source_contract(_NaiveIndex), check), "not UTC")
    fails(source_contract(_IgnoresBounds).test_load_slices_by_start_and_end, "returned X bars")
    fails(source_contract(_SharedCache).test_loads_are_independent, "hand out copies")
    good = source_contract(_GoodSource)
    for name in dir(good):
        if name.startswith("test_") and name != "test_chunked_matches_load":
            getattr(good, name)()


# --- brokers --------------------------------------------------------------------------------------


class _RedrainingBroker(SimulatedBroker):
    """drain() hands out its events again."""

    def drain(self) -> list[Any]:
        return self.events[:]


class _DoubleBookingBroker(SimulatedBroker):
    """Ingests venue reports and books a reported fill every time it is reported."""

    def on_report(self, report: Any) -> None:
        order = self.orders[report.client_order_id]
        fill = Fill(
            report.trade_id, order.client_order_id, order.symbol, order.side, report.quantity,
            report.price, report.fee, report.ts, order.strategy_id,
        )  # fmt: skip
        self.ledger.apply_fill(fill, self.market.bar_index(order.symbol))
        self.events.append(fill)


class _DedupBroker(_DoubleBookingBroker):
    """The same, ignoring a trade id it has already delivered."""

    def drain(self) -> list[Any]:
        events = super().drain()
        self.delivered = getattr(self, "delivered", set())
        self.delivered |= {e.fill_id for e in events if isinstance(e, Fill)}
        return events

    def on_report(self, report: Any) -> None:
        if report.trade_id not in getattr(self, "delivered", set()):
            super().on_report(report)


class _ResubmittingBroker(SimulatedBroker):
    """Books a resent client order id as a new order."""

    def submit(self, order: Any) -> None:
        if order.client_order_id in self.orders:  # booked under an internal id of its own
            order = order._evolve(client_order_id=order.client_order_id + "-again")
        super().submit(order)


class _LeakyCancelBroker(SimulatedBroker):
    """Says canceled but leaves the order working."""

    def cancel(self, client_order_id: str, reason: str = "canceled by strategy") -> None:
        order = self.orders.get(client_order_id)
        if order is not None and order.status.is_working:
            canceled = order.transition(OrderStatus.CANCELED, self._now, reason)
            self.orders[client_order_id] = canceled
            self.events.append(OrderUpdate(canceled, order.status, self._now))


def broker_contract(cls: type[SimulatedBroker]) -> BrokerContract:
    return type("Contract", (BrokerContract,), {"broker_cls": cls})()


def test_broker_contract_fails_a_broker_that_delivers_a_fill_twice() -> None:
    fails(broker_contract(_RedrainingBroker).test_fills_delivered_once, "second time")


def test_broker_contract_fails_a_broker_that_double_books_a_duplicate_fill() -> None:
    fails(
        broker_contract(_DoubleBookingBroker).test_redelivered_fill_counts_once,
        "reported twice was delivered twice",
    )
    broker_contract(_DedupBroker).test_redelivered_fill_counts_once()


def test_broker_contract_fails_a_broker_that_books_a_resent_order_twice() -> None:
    fails(
        broker_contract(_ResubmittingBroker).test_idempotent_submit, "position 20 after one order"
    )


def test_broker_contract_fails_a_cancel_that_leaves_the_order_working() -> None:
    fails(broker_contract(_LeakyCancelBroker).test_cancel, "canceled order is still open")


def test_broker_contract_redelivery_is_skipped_without_venue_reports() -> None:
    with pytest.raises(pytest.skip.Exception, match="takes no venue reports"):
        broker_contract(SimulatedBroker).test_redelivered_fill_counts_once()


# --- risk rules -----------------------------------------------------------------------------------


class _Cap(RiskRule):
    """Refuses orders over ten units."""

    def check(self, order: Any, view: Any) -> Reject | None:
        if order.quantity > 10:
            return Reject(self.name, "over ten units", 10, order.quantity)
        return None


class _Anonymous(_Cap):
    def check(self, order: Any, view: Any) -> Reject | None:
        verdict = super().check(order, view)
        return None if verdict is None else Reject("some-rule", verdict.reason)


class _Lenient(_Cap):
    def check(self, order: Any, view: Any) -> Reject | None:
        return None


class _Moody(_Cap):
    def check(self, order: Any, view: Any) -> Reject | None:
        verdict = super().check(order, view)
        if verdict is not None:
            return Reject(self.name, "over ten units", 10, random.random())
        return None


def rule_contract(cls: type[RiskRule]) -> RiskRuleContract:
    attrs = {"rule_cls": cls, "allowed_order": {"quantity": 10}, "refused_order": {"quantity": 11}}
    return type("Contract", (RiskRuleContract,), attrs)()


def test_risk_contract_fails_rules_that_do_not_refuse_or_name_themselves() -> None:
    refuses = "test_refuses_the_refused_order_naming_the_rule"
    fails(getattr(rule_contract(_Anonymous), refuses), "names rule 'some-rule'")
    fails(getattr(rule_contract(_Lenient), refuses), "accepted the refused order")
    fails(rule_contract(_Moody).test_deterministic, "decided differently")
    good = rule_contract(_Cap)
    getattr(good, refuses)()
    good.test_accepts_the_allowed_order()
    good.test_deterministic()
    assert good.component_name() == "_cap"


# --- collection, as a plugin's test run sees it ---------------------------------------------------

pytest_plugins = ["pytester"]


def test_pytest_collects_the_subclass_and_never_the_imported_contract(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mine="""
        from tradeloom.testing import RiskRuleContract, StrategyContract

        class TestCap(RiskRuleContract):
            rule_type = "max-order-quantity"
            params = {"max_quantity": 100}
            allowed_order = {"quantity": 100}
            refused_order = {"quantity": 100}  # wrong on purpose: the rule accepts it
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*max-order-quantity accepted the refused order*",
            "FAILED*TestCap::test_refuses_the_refused_order_naming_the_rule*",
        ]
    )
    assert "StrategyContract::" not in result.stdout.str()
    assert "RiskRuleContract::" not in result.stdout.str()
