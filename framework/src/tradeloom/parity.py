"""Parity: run one strategy through the event engine and the vector engine and diff the trades.

The two engines share their conventions (fills, fees, slippage, cash, accounting), so a
strategy whose ``signals`` reproduce its ``on_bar`` must produce the same trades in both, to
the last bit in practice. :func:`run_parity` checks a deployment; :func:`compare_trades` and
:func:`compare_results` compare any two trade lists or results.

>>> report = compare_results(event_result, vector_result)
>>> report.ok, report.summary()
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tradeloom.errors import ConfigError

if TYPE_CHECKING:
    from tradeloom.config import ResolvedDeployment
    from tradeloom.engine.result import BacktestResult
    from tradeloom.plugins import PluginHost

__all__ = [
    "Difference",
    "ParityReport",
    "compare_results",
    "compare_trades",
    "refuse_cost_models",
    "refuse_fill_models",
    "refuse_foreign_currencies",
    "run_parity",
]

MISSING = "(missing row)"
"""The ``column`` of a :class:`Difference` for a trade that only one side has."""


@dataclass(frozen=True)
class Difference:
    """One cell that differs: trade ``row`` (0-based, in exit order), its ``column`` and the
    value on each side (``None`` for a row one side does not have)."""

    row: int
    column: str
    a: Any
    b: Any


@dataclass(frozen=True)
class ParityReport:
    """The outcome of a trade-by-trade comparison of side ``a`` and side ``b``."""

    trades_a: int
    trades_b: int
    matched: int
    """Rows (at the same position on both sides) whose every column agrees."""
    differences: list[Difference]
    """The first differing cells, by row then column (at most ``max_differences``)."""
    n_differences: int
    """All differing cells, plus one per row only one side has."""
    rtol: float
    atol: float
    columns: list[str] = field(default_factory=list)
    """The columns compared."""
    final_equity_a: float | None = None
    final_equity_b: float | None = None
    fills_a: int | None = None
    fills_b: int | None = None
    labels: tuple[str, str] = ("a", "b")

    @property
    def trades_match(self) -> bool:
        return self.n_differences == 0 and self.trades_a == self.trades_b

    @property
    def equity_matches(self) -> bool | None:
        """Whether the final equities agree within the tolerances; ``None`` if not given."""
        if self.final_equity_a is None or self.final_equity_b is None:
            return None
        return _close(self.final_equity_a, self.final_equity_b, self.rtol, self.atol)

    @property
    def fills_match(self) -> bool | None:
        """Whether both sides have as many fills; ``None`` if not given."""
        if self.fills_a is None or self.fills_b is None:
            return None
        return self.fills_a == self.fills_b

    @property
    def ok(self) -> bool:
        """Trades, final equity and fill count all agree (the last two when given)."""
        return (
            self.trades_match and self.equity_matches is not False and self.fills_match is not False
        )

    def summary(self) -> str:
        """One line: what agreed and, if anything did not, the first difference."""
        a, b = self.labels
        parts = [
            f"{self.matched} of {max(self.trades_a, self.trades_b)} trades match "
            f"({self.trades_a} {a}, {self.trades_b} {b})"
        ]
        if self.fills_a is not None and self.fills_b is not None:
            parts.append(f"fills {self.fills_a} {a} vs {self.fills_b} {b}")
        if self.final_equity_a is not None and self.final_equity_b is not None:
            parts.append(
                f"final equity {self.final_equity_a:,.4f} {a} vs {self.final_equity_b:,.4f} {b}"
            )
        if self.differences:
            d = self.differences[0]
            parts.append(f"first difference: trade {d.row} {d.column}: {d.a!r} {a} vs {d.b!r} {b}")
        verdict = "parity holds" if self.ok else "parity FAILS"
        return f"{verdict}: " + "; ".join(parts)


def compare_trades(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    max_differences: int = 20,
    final_equity: tuple[float, float] | None = None,
    fills: tuple[int, int] | None = None,
    labels: tuple[str, str] = ("a", "b"),
) -> ParityReport:
    """Compare two trade frames row by row (trades in the order they closed).

    Float columns agree when ``|x - y| <= atol + rtol * |y|`` (NaN equals NaN); every other
    column (symbol, side, times, bars held, ...) must be equal. Columns present on one side only
    are ignored. ``final_equity`` and ``fills`` (``(a, b)`` pairs) are carried into the report
    and checked by :attr:`ParityReport.ok`.
    """
    columns = [c for c in a.columns if c in b.columns]
    shared = min(len(a), len(b))
    bad_rows = np.zeros(shared, dtype=bool)
    cells: list[tuple[int, int]] = []  # (row, column position)
    for position, column in enumerate(columns):
        mismatch = _mismatch(a[column].iloc[:shared], b[column].iloc[:shared], rtol, atol)
        bad_rows |= mismatch
        cells.extend((int(row), position) for row in np.flatnonzero(mismatch))
    cells.sort()
    differences = [
        Difference(
            row, columns[p], _plain(a[columns[p]].iloc[row]), _plain(b[columns[p]].iloc[row])
        )
        for row, p in cells[:max_differences]
    ]
    extra = [
        Difference(row, MISSING, _describe(a, row) if row < len(a) else None,
                   _describe(b, row) if row < len(b) else None)
        for row in range(shared, max(len(a), len(b)))
    ]  # fmt: skip
    differences = (differences + extra)[:max_differences]
    return ParityReport(
        trades_a=len(a),
        trades_b=len(b),
        matched=int(shared - bad_rows.sum()),
        differences=differences,
        n_differences=len(cells) + len(extra),
        rtol=rtol,
        atol=atol,
        columns=columns,
        final_equity_a=None if final_equity is None else float(final_equity[0]),
        final_equity_b=None if final_equity is None else float(final_equity[1]),
        fills_a=None if fills is None else int(fills[0]),
        fills_b=None if fills is None else int(fills[1]),
        labels=labels,
    )


def compare_results(
    a: BacktestResult,
    b: BacktestResult,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    max_differences: int = 20,
    labels: tuple[str, str] = ("event", "vector"),
) -> ParityReport:
    """:func:`compare_trades` of two backtest results, with their final equity and fills."""
    return compare_trades(
        a.trades,
        b.trades,
        rtol=rtol,
        atol=atol,
        max_differences=max_differences,
        final_equity=(_final_equity(a), _final_equity(b)),
        fills=(len(a.fills), len(b.fills)),
        labels=labels,
    )


def run_parity(
    resolved: ResolvedDeployment,
    host: PluginHost | None = None,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    max_differences: int = 20,
) -> ParityReport:
    """Run ``resolved`` through the event engine (:func:`tradeloom.api.run_deployment`) and
    the vector engine (:func:`tradeloom.vector.run_signals`) and compare the two.

    The deployment must hold exactly one strategy, which implements ``signals``, no risk
    rules, no cost models, no fill models (the vector engine applies none of them) and no
    symbol quoted in another currency than the account's (it converts none);
    otherwise :class:`ConfigError` says which.
    """
    from tradeloom.api import run_deployment
    from tradeloom.execution import SimulatedBroker
    from tradeloom.vector import run_signals

    if len(resolved.strategies) != 1:
        ids = ", ".join(repr(c.id or c.spec.name) for c in resolved.strategies)
        raise ConfigError(
            f"parity compares one strategy at a time; this deployment has "
            f"{len(resolved.strategies)} ({ids}): keep one, e.g. with a config per strategy",
            path="strategies",
        )
    if resolved.risk:
        names = ", ".join(r.spec.name for r in resolved.risk)
        raise ConfigError(
            f"the vector engine applies no risk rules, so parity cannot be checked with {names}; "
            "remove them (e.g. --set risk=[]) to compare the engines",
            path="risk",
        )
    refuse_cost_models(resolved)
    refuse_fill_models(resolved)
    refuse_foreign_currencies(resolved)
    slot = resolved.strategies[0]
    sid = slot.id or slot.spec.name
    strategy = slot.build()
    if not callable(getattr(strategy, "signals", None)):
        raise ConfigError(
            f"strategy {sid!r} ({slot.spec.name}, {type(strategy).__name__}) does not implement "
            "signals(), so the vector engine cannot run it and there is nothing to compare",
            path=slot.path,
        )
    broker = resolved.broker.build()
    if not isinstance(broker, SimulatedBroker):
        raise ConfigError(
            f'broker {resolved.broker.spec.name!r} cannot run backtests; use type = "simulated"',
            path="broker.type",
        )
    event = run_deployment(resolved, host)
    run = resolved.run
    vector = run_signals(
        resolved.data.build(),  # type: ignore[arg-type]
        strategy,  # type: ignore[arg-type]
        broker_params=broker.params,  # type: ignore[arg-type]
        initial_cash=run.initial_cash,
        currency=run.currency,
        start=run.start,
        end=run.end,
        benchmark=run.benchmark,
        strategy_id=sid,
        fallback=False,
    )
    return compare_results(event, vector, rtol=rtol, atol=atol, max_differences=max_differences)


def refuse_cost_models(resolved: ResolvedDeployment) -> None:
    """Raise :class:`ConfigError` (path ``costs``) if ``resolved`` configures cost models: the
    vector engine applies only the simulated broker's ``fees`` and ``slippage_bps``."""
    if resolved.costs:
        names = ", ".join(c.spec.name for c in resolved.costs)
        raise ConfigError(
            f"the vector engine supports only the broker's `fees` and `slippage_bps`, not cost "
            f"models ({names}), so it cannot run this deployment; remove them (e.g. "
            "--set costs=[]) to use the vector engine or compare the engines",
            path="costs",
        )


def refuse_fill_models(resolved: ResolvedDeployment) -> None:
    """Raise :class:`ConfigError` (path ``fill_models``) if ``resolved`` configures fill models:
    the vector engine supports only the simulated broker's ``fill_at`` (next_open / close)."""
    if resolved.fill_models:
        names = ", ".join(f.spec.name for f in resolved.fill_models)
        raise ConfigError(
            f"the vector engine supports only the broker's `fill_at` (next_open / close), not "
            f"fill models ({names}), so it cannot run this deployment; remove them (e.g. "
            "--set fill_models=[]) to use the vector engine or compare the engines (for "
            "same-close, set the broker's `fill_at` to close instead)",
            path="fill_models",
        )


def refuse_foreign_currencies(resolved: ResolvedDeployment) -> None:
    """Raise :class:`ConfigError` (path ``run.currencies``) if ``resolved`` quotes a symbol in
    another currency than ``run.currency``: the vector engine values everything in one
    currency and converts nothing."""
    run = resolved.run
    foreign = {s: c for s, c in sorted(run.currencies.items()) if c != run.currency}
    if foreign:
        listed = ", ".join(f"{s} in {c}" for s, c in foreign.items())
        raise ConfigError(
            f"the vector engine values every symbol in the account currency ({run.currency}) "
            f"and converts none, so it cannot run this deployment, which quotes {listed}; "
            "remove them (e.g. --set run.currencies={}) to use the vector engine or compare the "
            "engines",
            path="run.currencies",
        )


# --- helpers ------------------------------------------------------------------------------------


def _final_equity(result: BacktestResult) -> float:
    return float(result.equity["equity"].iloc[-1]) if len(result.equity) else result.initial_cash


def _close(x: float, y: float, rtol: float, atol: float) -> bool:
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return abs(x - y) <= atol + rtol * abs(y)


def _mismatch(x: pd.Series, y: pd.Series, rtol: float, atol: float) -> np.ndarray:
    """Where two aligned columns differ (positionally)."""
    xs, ys = x.to_numpy(), y.to_numpy()
    if _is_float(x) and _is_float(y):
        xf, yf = xs.astype(np.float64), ys.astype(np.float64)
        with np.errstate(invalid="ignore"):
            close = np.abs(xf - yf) <= atol + rtol * np.abs(yf)
        both_nan = np.isnan(xf) & np.isnan(yf)
        return ~(close | both_nan)
    return np.array([not _same(p, q) for p, q in zip(xs, ys, strict=True)], dtype=bool)


def _is_float(series: pd.Series) -> bool:
    return pd.api.types.is_float_dtype(series.dtype)


def _same(p: Any, q: Any) -> bool:
    if p is None or q is None:
        return p is q
    try:
        return bool(p == q)
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """A value fit for messages: numpy scalars become Python ones."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _describe(frame: pd.DataFrame, row: int) -> str:
    record = frame.iloc[row]
    keys: Sequence[str] = [k for k in ("symbol", "side", "entry_time", "exit_time") if k in record]
    return " ".join(str(record[k]) for k in keys)
