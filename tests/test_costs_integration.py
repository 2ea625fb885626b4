"""Cost models inside the simulated broker, the config and the outputs: every number below is
worked out by hand in a comment (bars from ``helpers.GAP_ROWS``, daily from Mon 2024-01-01)."""

from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import tradeloom.api
from tradeloom.cli.main import main
from tradeloom.config import load_deployment, resolve
from tradeloom.errors import ConfigError, RunError
from tradeloom.execution import SimulatedBroker
from tradeloom.execution.cost_models import (
    BorrowFee,
    CashInterest,
    CostModel,
    MakerTakerCommission,
    PercentCommission,
    SpreadCost,
    TieredCommission,
    TradeInfo,
)
from tradeloom.model import Bar, Fill, OrderStatus, Side
from tradeloom.parity import run_parity
from tradeloom.plugins import PluginHost
from tradeloom.portfolio import CashFlow

from helpers import GAP_ROWS, IBM_DEPLOYMENT, Scripted, bars, run

#   b0 Mon 01-01  100 101  99 100
#   b1 Tue 01-02  102 104 101 103
#   b2 Wed 01-03  103 106 100 105
#   b3 Thu 01-04  110 112 108 111   gaps up
#   b4 Fri 01-05   95  97  90  96   gaps down


def ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12, abs=1e-12)


def broker_with(*models: CostModel, **params: object) -> SimulatedBroker:
    broker = SimulatedBroker(**params)
    broker.use_costs(models)
    return broker


def fills(strategy: Scripted) -> list[tuple[str, float, object, object]]:
    return [(f.side.value, f.quantity, approx(f.price), approx(f.fee)) for f in strategy.fills]


# --- maker / taker -------------------------------------------------------------------------------


def test_limit_at_its_limit_is_maker_market_and_marketable_limit_are_taker() -> None:
    maker_taker = MakerTakerCommission(maker_rate=-0.0002, taker_rate=0.0007)
    s = Scripted(
        {
            0: lambda c: [
                c.buy("X", 10, limit=101.5),  # b1 opens 102, trades down to 101.5: maker
                c.buy("X", 10),  # market: b1 open 102, taker
                c.buy("X", 10, limit=103.0),  # b1 opens 102 below the limit: marketable, taker
            ]
        }
    )
    _, broker = run(bars(GAP_ROWS), s, broker=broker_with(maker_taker))
    assert fills(s) == [
        ("buy", 10, 101.5, -1015 * 0.0002),  # a rebate: -0.203
        ("buy", 10, 102.0, 1020 * 0.0007),  # 0.714
        ("buy", 10, 102.0, 1020 * 0.0007),
    ]
    # 10 000 − (1015 + 1020 + 1020) − (−0.203 + 0.714 + 0.714) = 6943.775
    assert broker.ledger.cash == approx(6943.775)
    assert broker.ledger.fees_paid == approx(1.225)


def test_limit_sell_at_limit_is_maker_and_stop_limit_maker_only_after_its_trigger_bar() -> None:
    maker_taker = MakerTakerCommission(maker_rate=0.0001, taker_rate=0.001)
    s = Scripted(
        {
            # triggered on its own bar b1 (high 104 >= 104) and filled there at the trigger
            # price 104 <= limit 104.5: taker, 1040 × 0.001 = 1.04
            0: lambda c: c.buy("X", 10, stop=104.0, limit=104.5),
            # triggered on b2 (high 106 >= 105.5) at 105.5, above the limit 104: not filled;
            # a resting limit from b3 on, which opens at 110 and trades down to 108 only: not
            # filled; b4 opens 95 below the limit: filled at the better open, taker (0.95)
            1: lambda c: c.buy("X", 10, stop=105.5, limit=104.0),
        }
    )
    s.script[2] = lambda c: c.sell("X", 5, limit=111.5)  # b3 trades 108–112: maker at 111.5
    _, _broker = run(bars(GAP_ROWS), s, broker=broker_with(maker_taker))
    assert fills(s) == [
        ("buy", 10, 104.0, 1.04),
        ("sell", 5, 111.5, 557.5 * 0.0001),
        ("buy", 10, 95.0, 0.95),
    ]


def test_triggered_stop_limit_resting_at_its_limit_is_maker() -> None:
    maker_taker = MakerTakerCommission(maker_rate=-0.0001, taker_rate=0.001)
    # b1: the stop 103.5 is touched (high 104) but 103.5 > limit 102.5: triggered, not filled.
    # b2 opens 103 above the limit and trades down to 100: filled at the limit 102.5, maker.
    s = Scripted({0: lambda c: c.buy("X", 10, stop=103.5, limit=102.5)})
    run(bars(GAP_ROWS), s, broker=broker_with(maker_taker))
    assert fills(s) == [("buy", 10, 102.5, -1025 * 0.0001)]


# --- spread ----------------------------------------------------------------------------------


def test_spread_moves_market_fills_against_the_trader_after_slippage() -> None:
    spread = SpreadCost(half_spread_bps=50)
    s = Scripted({0: lambda c: c.buy("X", 10), 1: lambda c: c.sell("X", 10)})
    run(bars(GAP_ROWS), s, broker=broker_with(spread, slippage_bps=10))
    assert fills(s) == [
        # b1 open 102, slipped 10 bps = 102.102, then half-spread 50 bps = 102.612510 (< 104)
        ("buy", 10, 102.0 * 1.001 * 1.005, 0.0),
        # b2 open 103, slipped = 102.897, then 102.382515 (> low 100)
        ("sell", 10, 103.0 * 0.999 * 0.995, 0.0),
    ]


def test_spread_is_clamped_to_the_bar() -> None:
    spread = SpreadCost(half_spread_bps=300)
    s = Scripted({0: lambda c: c.buy("X", 10), 2: lambda c: c.sell("X", 10)})
    _, broker = run(bars(GAP_ROWS), s, broker=broker_with(spread))
    # buy on b1: 102 × 1.03 = 105.06 > high 104 -> 104; sell on b3: 110 × 0.97 = 106.7 < low 108
    assert fills(s) == [("buy", 10, 104.0, 0.0), ("sell", 10, 108.0, 0.0)]
    assert broker.ledger.cash == approx(10_000 - 1040 + 1080)


def test_spread_skips_maker_fills_and_never_crosses_a_limit() -> None:
    spread = SpreadCost(half_spread_bps=50)
    s = Scripted(
        {
            0: lambda c: [
                c.buy("X", 1, limit=101.5),  # maker at 101.5: no spread
                c.buy("X", 1, limit=102.3),  # marketable at 102: 102.51, capped at 102.3
                c.buy("X", 1, limit=103.0),  # marketable at 102: 102.51 <= 103
            ]
        }
    )
    run(bars(GAP_ROWS), s, broker=broker_with(spread))
    assert fills(s) == [
        ("buy", 1, 101.5, 0.0),
        ("buy", 1, 102.3, 0.0),
        ("buy", 1, 102.0 * 1.005, 0.0),
    ]


def test_spread_on_a_fill_at_the_close_uses_that_bar() -> None:
    s = Scripted({0: lambda c: c.buy("X", 1), 1: lambda c: c.buy("X", 1)})
    run(bars(GAP_ROWS), s, broker=broker_with(SpreadCost(half_spread_bps=300), fill_at="close"))
    # b0 close 100 × 1.03 = 103 > high 101 -> 101; b1 close 103 × 1.03 = 106.09 > 104 -> 104
    assert fills(s) == [("buy", 1, 101.0, 0.0), ("buy", 1, 104.0, 0.0)]


# --- commissions and the cash checks ---------------------------------------------------------------


def test_tiered_charges_a_fill_crossing_a_tier_at_the_lower_tier_rate() -> None:
    tiered = TieredCommission(tiers=[{"up_to": 1500, "rate": 0.001}, {"rate": 0.0005}])
    s = Scripted({0: lambda c: c.buy("X", 10), 1: lambda c: c.buy("X", 10)})
    s.script[2] = lambda c: c.sell("X", 20)
    broker = broker_with(tiered)
    run(bars(GAP_ROWS), s, broker=broker)
    assert fills(s) == [
        ("buy", 10, 102.0, 1020 * 0.001),  # volume 0 before it: tier 1; volume 1020
        ("buy", 10, 103.0, 1030 * 0.001),  # volume 1020 < 1500: tier 1 for all; volume 2050
        ("sell", 20, 110.0, 2200 * 0.0005),  # volume 2050 >= 1500: tier 2
    ]
    # the cash checks at submission estimated the commissions on copies: only fills count
    assert tiered.month_volume == approx(1020 + 1030 + 2200)
    again = Scripted({0: lambda c: c.buy("X", 10)})
    run(bars(GAP_ROWS), again, broker=broker)  # start() resets the month's volume
    assert fills(again) == [("buy", 10, 102.0, 1.02)]
    assert tiered.month_volume == approx(1020)


def test_commission_counts_in_the_cash_check_at_submission() -> None:
    # estimated cost of a market buy of 10 on b0: 10 × close 100 + 0.1 % commission = 1001
    s = Scripted({0: lambda c: c.buy("X", 10)})
    _, broker = run(
        bars(GAP_ROWS), s, cash=1000.5, broker=broker_with(PercentCommission(rate=0.001))
    )
    (order,) = broker.orders.values()
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "insufficient cash: order needs 1,001.00, available 1,000.50"


def test_a_fill_canceled_for_cash_does_not_count_as_tiered_volume() -> None:
    tiered = TieredCommission(tiers=[{"rate": 0.001}])
    # accepted at 1000 + 1 <= 1020.5; at b1 it costs 1020 + 1.02 = 1021.02 > 1020.5: canceled
    s = Scripted({0: lambda c: c.buy("X", 10)})
    _, broker = run(bars(GAP_ROWS), s, cash=1020.5, broker=broker_with(tiered))
    (order,) = broker.orders.values()
    assert order.status is OrderStatus.CANCELED
    assert order.reason == "insufficient cash at fill: needs 1,021.02, cash 1,020.50"
    assert tiered.month_volume == 0.0


def test_models_apply_in_order_and_add_to_the_fees_model() -> None:
    from tradeloom.execution import PercentFees

    s = Scripted({0: lambda c: c.buy("X", 10)})
    broker = broker_with(
        SpreadCost(half_spread_bps=50),
        PercentCommission(rate=0.001, minimum=2.0),
        fees=PercentFees(rate=0.0005),
    )
    run(bars(GAP_ROWS), s, broker=broker)
    # price 102 × 1.005 = 102.51; notional 1025.1: fees 0.51255 + max(1.0251, 2) = 2.51255
    assert fills(s) == [("buy", 10, 102.51, 1025.1 * 0.0005 + 2.0)]
    lines = broker.conventions()
    assert lines[-3].startswith("Cost models apply in the configured order")
    assert lines[-2:] == [
        "Spread: half-spread of 50 bps of the price against the trader (buys higher, sells "
        "lower), clamped to the bar's low–high range.",
        "Commission: 0.10 % of notional, minimum 2 per fill.",
    ]
    assert not any("Cost models" in line for line in SimulatedBroker().conventions())


def test_a_failing_model_is_named() -> None:
    class Broken(CostModel):
        """Raises."""

        def commission(self, trade: TradeInfo) -> float:
            raise ZeroDivisionError("oops")

    s = Scripted({0: lambda c: c.sell("X", 1)})
    with pytest.raises(RunError, match=r"cost model 'Broken' \(Broken\) raised in commission"):
        run(bars(GAP_ROWS), s, broker=broker_with(Broken()))


# --- daily financing -------------------------------------------------------------------------


def started(*models: CostModel, cash: float = 10_000.0) -> SimulatedBroker:
    broker = broker_with(*models)
    broker.start(initial_cash=cash, currency="USD", symbols=["X"])
    return broker


def mark(broker: SimulatedBroker, when: str, close: float) -> int:
    ts = ns(when)
    broker.on_bar(Bar("X", ts, close, close, close, close, 1.0))
    return ts


def test_borrow_fee_and_cash_interest_over_a_weekend() -> None:
    broker = started(BorrowFee(annual_rate=0.036), CashInterest(annual_rate=0.018))
    assert broker.wants_daily
    friday = mark(broker, "2024-01-05 14:30", 50.0)
    broker.ledger.apply_fill(Fill("F1", "o1", "X", Side.SELL, 100, 50.0, 0.0, friday))
    broker.accrue(friday)  # the first call only remembers the day
    assert broker.ledger.cash_flows == []
    monday = mark(broker, "2024-01-08 14:31", 52.0)
    broker.accrue(monday)
    # 3 calendar days; short 100 × 52 = 5200: −5200 × 3.6 % × 3 / 360 = −1.56
    # cash 10 000 + 5 000 = 15 000: 15 000 × 1.8 % × 3 / 360 = +2.25 (both on the cash before)
    assert broker.ledger.cash_flows == [
        CashFlow(monday, "borrow-fee", "", approx(-1.56)),
        CashFlow(monday, "cash-interest", "", approx(2.25)),
    ]
    assert broker.ledger.cash == approx(15_000 - 1.56 + 2.25)
    broker.accrue(ns("2024-01-08 20:00"))  # the same day again: nothing
    assert len(broker.ledger.cash_flows) == 2
    tuesday = ns("2024-01-09 14:30")
    broker.accrue(tuesday)
    # 1 day: −5200 × 0.036 / 360 = −0.52; 15 000.69 × 0.018 / 360 = 0.7500345
    assert [f.amount for f in broker.ledger.cash_flows[2:]] == [
        approx(-0.52),
        approx(15_000.69 * 0.018 / 360),
    ]


def test_debit_interest_on_negative_cash_and_nothing_on_flat_longs() -> None:
    broker = started(BorrowFee(annual_rate=0.05), CashInterest(annual_rate=0.02, debit_rate=0.072))
    day1 = mark(broker, "2024-01-02", 110.0)
    broker.ledger.apply_fill(Fill("F1", "o1", "X", Side.BUY, 100, 110.0, 0.0, day1))
    broker.accrue(day1)
    day2 = ns("2024-01-03")
    broker.accrue(day2)
    # cash 10 000 − 11 000 = −1000: −1000 × 7.2 % / 360 = −0.2; no short: no borrow fee
    assert broker.ledger.cash_flows == [CashFlow(day2, "cash-interest", "", approx(-0.2))]


def test_accrue_without_financing_models_books_nothing() -> None:
    broker = started(PercentCommission(rate=0.001))
    assert not broker.wants_daily
    assert not SimulatedBroker().wants_daily
    broker.accrue(ns("2024-01-02"))
    broker.accrue(ns("2024-01-05"))
    assert broker.ledger.cash_flows == []


def test_the_registered_name_is_the_cash_flow_kind() -> None:
    fee = BorrowFee(annual_rate=0.036)
    fee.name = "my-borrow"  # type: ignore[attr-defined]  # as run_deployment sets it
    broker = started(fee)
    friday = mark(broker, "2024-01-05", 50.0)
    broker.ledger.apply_fill(Fill("F1", "o1", "X", Side.SELL, 100, 50.0, 0.0, friday))
    broker.accrue(friday)
    broker.accrue(ns("2024-01-06"))
    assert [(f.kind, f.amount) for f in broker.ledger.cash_flows] == [("my-borrow", approx(-0.5))]


# --- the deployment config -------------------------------------------------------------------

DEPLOY = IBM_DEPLOYMENT

COSTS = """
[[costs]]
type = "maker-taker"
params = { maker_rate = -0.0002, taker_rate = 0.0007 }

[[costs]]
type = "per-unit"
params = { per_unit = 0.01, minimum = 1.0 }
"""


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


def write(tmp_path: Path, text: str, name: str = "deploy.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("costs", "path", "expect"),
    [
        (
            '[[costs]]\ntype = "percent"\nparams = { rate = 0.001 }\n'
            '[[costs]]\ntype = "percent"\nparams = { rate = 2 }\n',
            "costs[1].params.rate",
            "costs[1].params.rate: Input should be less than 1 (got 2)",
        ),
        (
            '[[costs]]\ntype = "spread"\nparams = { half_spread_bps = 5, range_fraction = 0.1 }\n',
            "costs[0].params",
            "costs[0].params: give exactly one of half_spread_bps",
        ),
        (
            '[[costs]]\ntype = "tiered"\nparams = { tiers = [{ up_to = 10, rate = 0.5 }, '
            "{ rate = 1.5 }] }\n",
            "costs[0].params.tiers[1].rate",
            "costs[0].params.tiers[1].rate: Input should be less than 1 (got 1.5)",
        ),
        (
            '[[costs]]\ntype = "percent"\nparams = { rate = 0.001, minmum = 1 }\n',
            "costs[0].params.minmum",
            "costs[0].params.minmum: unknown key; valid keys: rate, minimum",
        ),
        (
            '[[costs]]\ntype = "comission"\n',
            "costs[0].type",
            "costs[0].type: unknown cost model type 'comission'; installed: borrow-fee, "
            "cash-interest, maker-taker, per-unit, percent, spread, tiered",
        ),
    ],
)
def test_config_errors_name_the_path(
    host: PluginHost, tmp_path: Path, costs: str, path: str, expect: str
) -> None:
    config = write(tmp_path, DEPLOY + costs)
    with pytest.raises(ConfigError) as info:
        load_deployment([config], host=host)
    assert info.value.path == path
    assert str(info.value).startswith(expect)


def test_resolved_costs_are_canonical(host: PluginHost, tmp_path: Path) -> None:
    resolved = load_deployment([write(tmp_path, DEPLOY + COSTS)], host=host)
    assert [(c.path, c.spec.name) for c in resolved.costs] == [
        ("costs[0]", "maker-taker"),
        ("costs[1]", "per-unit"),
    ]
    assert resolved.to_dict()["costs"] == [
        {"type": "maker-taker", "params": {"maker_rate": -0.0002, "taker_rate": 0.0007}},
        {"type": "per-unit", "params": {"per_unit": 0.01, "minimum": 1.0}},
    ]
    again = resolve(tomllib.loads(resolved.to_toml()), host)
    assert again.to_dict() == resolved.to_dict()
    plain = load_deployment([write(tmp_path, DEPLOY, "plain.toml")], host=host)
    assert plain.costs == [] and plain.to_dict()["costs"] == []
    assert plain.config_hash() != resolved.config_hash()


def test_deployment_with_costs_through_the_api(tmp_path: Path) -> None:
    with_costs = tradeloom.api.backtest(write(tmp_path, DEPLOY + COSTS))
    without = tradeloom.api.backtest(write(tmp_path, DEPLOY, "plain.toml"))
    assert len(with_costs.fills) == len(without.fills) > 4
    # market orders only: same prices, every fill a taker paying 0.07 % + max(10 × 0.01, 1) = 1
    assert with_costs.fills["price"].tolist() == without.fills["price"].tolist()
    notional = without.fills["quantity"] * without.fills["price"]
    expected = notional * 0.0007 + 1.0
    assert with_costs.fills["fee"].tolist() == pytest.approx(expected.tolist(), rel=1e-12)
    assert without.fills["fee"].tolist() == [0.0] * len(without.fills)
    final = with_costs.equity["equity"].iloc[-1]
    assert final == pytest.approx(without.equity["equity"].iloc[-1] - expected.sum(), rel=1e-12)
    assert with_costs.config["costs"][0]["type"] == "maker-taker"
    components = with_costs.provenance["components"]
    assert components["costs[1]"] == "cost_model:per-unit"
    assert with_costs.conventions[-4:] == [  # the broker's last lines, then the data's
        "Commission: takers pay 0.07 % of notional, makers receive a 0.02 % rebate.",
        "Commission: 0.01 per unit, minimum 1 per fill.",
        "Corporate actions: none applied (prices as the data source gives them).",
        "Currency: every amount in USD.",
    ]
    assert list(with_costs.cash_flows.columns) == ["time", "kind", "symbol", "amount"]


def test_outputs_hold_assumptions_and_cash_flows(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        DEPLOY.replace("quantity = 10", 'quantity = 10, direction = "long_short"')
        + '[[costs]]\ntype = "borrow-fee"\nparams = { annual_rate = 0.05 }\n',
    )
    assert main(["backtest", str(config), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["assumptions"][0] == "Market orders fill at the next bar's open (no look-ahead)."
    assert metrics["assumptions"][-3] == (
        "Borrow fee: 5.00 % a year (actual/360) on the value of short positions, accrued daily."
    )
    assert metrics["num_fills"] > 0  # the metrics are still there, beside the assumptions
    rows = (out / "cash_flows.csv").read_text().splitlines()
    assert rows[0] == "time,kind,symbol,amount"
    for row in rows[1:]:  # whatever days the engine accrued: borrow fees are costs
        _, kind, symbol, amount = row.split(",")
        assert (kind, symbol) == ("borrow-fee", "") and float(amount) < 0


def test_parity_refuses_cost_models(host: PluginHost, tmp_path: Path) -> None:
    resolved = load_deployment([write(tmp_path, DEPLOY + COSTS)], host=host)
    with pytest.raises(ConfigError) as info:
        run_parity(resolved, host)
    assert info.value.path == "costs"
    assert "supports only the broker's `fees` and `slippage_bps`, not cost models" in str(
        info.value
    )
    assert "maker-taker, per-unit" in str(info.value)
    config = write(tmp_path, DEPLOY + COSTS, "cli.toml")
    assert main(["parity", str(config)]) == 2
