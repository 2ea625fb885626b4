"""The event loop: time order across symbols, no look-ahead, determinism, failure policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeloom.data import MarketData
from tradeloom.errors import RunError
from tradeloom.execution import SimulatedBroker
from tradeloom.risk import RiskGate
from tradeloom.strategy import Strategy

from helpers import Scripted, bars, run

ROWS = [(10.0, 11.0, 9.0, 10.0 + i) for i in range(8)]


class Recorder(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[pd.Timestamp, tuple[str, ...]]] = []
        self.windows: list[np.ndarray] = []

    def on_bars(self, ctx, bars) -> None:  # type: ignore[no-untyped-def]
        self.calls.append((ctx.now, tuple(bars)))
        for symbol in bars:
            self.windows.append(ctx.history(symbol).copy())


def test_symbols_are_merged_in_time_order() -> None:
    a = bars(ROWS[:4], start="2024-01-01")  # Mon..Thu
    b = bars(ROWS[:3], start="2024-01-02")  # Tue..Thu
    rec = Recorder()
    out, _ = run({"B": b, "A": a}, rec)
    assert [(t.day, syms) for t, syms in rec.calls] == [
        (1, ("A",)),
        (2, ("A", "B")),
        (3, ("A", "B")),
        (4, ("A", "B")),
    ]
    assert len(out.equity) == 4


def test_history_only_ever_holds_the_past() -> None:
    seen: list[np.ndarray] = []

    class Peeker(Strategy):
        def on_bar(self, ctx, bar) -> None:  # type: ignore[no-untyped-def]
            window = ctx.history("X")
            seen.append(window.base.copy() if window.base is not None else window.copy())
            assert window[-1] == bar.close
            with pytest.raises(ValueError):
                window[0] = 0.0  # read-only

    run(bars(ROWS), Peeker())
    for i, buffer in enumerate(seen):
        closes = buffer[3] if buffer.ndim == 2 else buffer
        assert np.all(np.isnan(closes[i + 1 :])), f"bar {i} could see the future"
        assert list(closes[: i + 1]) == [10.0 + k for k in range(i + 1)]


def test_changing_future_bars_does_not_change_earlier_decisions() -> None:
    rows = [(100.0, 101.0, 99.0, 100.0 + (i % 3)) for i in range(10)]
    changed = rows[:6] + [(500.0, 600.0, 400.0, 550.0)] * 4

    def decisions(data: list) -> list:  # type: ignore[type-arg]
        rec = Recorder()
        run(bars(data), rec)
        return [w.tolist() for w in rec.windows[:6]]

    assert decisions(rows) == decisions(changed)


def test_same_inputs_give_identical_outputs() -> None:
    def once() -> tuple[bytes, list[str]]:
        s = Scripted({1: lambda c: c.buy("X", 3), 4: lambda c: c.sell("X", 3)})
        out, broker = run(bars(ROWS), s)
        return out.equity.tobytes(), [repr(t) for t in broker.ledger.trades]

    assert once() == once()


def test_a_strategy_that_raises_fails_the_backtest_naming_it() -> None:
    class Broken(Strategy):
        def on_bar(self, ctx, bar) -> None:  # type: ignore[no-untyped-def]
            if ctx.bar_count("X") == 3:
                raise ZeroDivisionError("oops")

    with pytest.raises(
        RunError,
        match=r"strategy 's' \(Broken\) raised in on_bar at 2024-01-03.*ZeroDivisionError: oops",
    ):
        run(bars(ROWS), Broken())


def test_runaway_order_loop_is_stopped() -> None:
    class Runaway(Strategy):
        def on_bar(self, ctx, bar) -> None:  # type: ignore[no-untyped-def]
            ctx.buy("X", 1, limit=1.0)

        def on_order(self, ctx, update) -> None:  # type: ignore[no-untyped-def]
            ctx.buy("X", 1, limit=1.0)  # every acknowledgement triggers another order

    with pytest.raises(RunError, match="runaway loop"):
        run(bars(ROWS), Runaway(), cash=1e12)


def test_ordering_an_unknown_symbol_is_a_clear_error() -> None:
    with pytest.raises(RunError, match="unknown symbol 'NOPE'; this run trades X"):
        run(bars(ROWS), Scripted({0: lambda c: c.buy("NOPE", 1)}))


def test_equity_is_cash_plus_positions_every_bar() -> None:
    s = Scripted(
        {0: lambda c: c.buy("X", 5), 3: lambda c: c.sell("X", 8), 6: lambda c: c.buy("X", 3)}
    )
    out, _ = run(bars(ROWS), s)
    assert np.allclose(out.equity, out.cash + out.position_value)
    assert out.position_value[1] == pytest.approx(5 * 11.0)
    assert out.position_value[4] == pytest.approx(-3 * 14.0)
    assert out.position_value[7] == 0.0


def test_equity_rebuilt_after_the_loop_matches_what_strategies_saw() -> None:
    """The equity curve is rebuilt from the fill journal; it must equal ctx.equity bar by bar,
    also with symbols whose bars do not line up."""
    rng = np.random.default_rng(7)

    def walk(n: int, start: str, freq: str) -> pd.DataFrame:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        rows = [(c * 1.001, c * 1.01, c * 0.99, c) for c in close]
        return bars(rows, start=start, freq=freq)

    class Trader(Strategy):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[float] = []

        def on_bars(self, ctx, bars) -> None:  # type: ignore[no-untyped-def]
            self.seen.append(ctx.equity)
            for symbol in bars:
                if rng.random() < 0.2:
                    ctx.order(symbol, float(rng.integers(-5, 6)) or 1.0)

    trader = Trader()
    frames = {"A": walk(300, "2024-01-01", "D"), "B": walk(200, "2024-03-01", "2D")}
    out, broker = run(frames, trader, cash=1e6)
    assert len(broker.ledger.journal) > 50
    assert len(out.equity) == len(trader.seen)
    assert np.allclose(out.equity, trader.seen, rtol=0, atol=1e-6)


def test_progress_is_reported_per_chunk_not_per_bar() -> None:
    from tradeloom.engine import backtest as engine_module

    calls: list[tuple[int, int]] = []
    frame = bars([(10.0, 11.0, 9.0, 10.0)] * 10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_module, "CHUNK", 4)  # 10 bars: chunks of 4, 4 and 2
        engine = engine_module.BacktestEngine(
            MarketData({"X": frame}), [("s", Strategy())], SimulatedBroker(), RiskGate([]),
            initial_cash=1.0, currency="USD", progress=lambda d, t: calls.append((d, t)),
        )  # fmt: skip
        engine.run()
    assert calls == [(0, 10), (4, 10), (8, 10), (10, 10)]
