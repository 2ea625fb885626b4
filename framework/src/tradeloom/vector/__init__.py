"""The vector engine: numba kernels that simulate signal-driven strategies, fast.

* :func:`run_signals` backtests a strategy that implements ``signals(data) -> Signals`` and
  returns the same :class:`~tradeloom.engine.result.BacktestResult` as the event engine, with
  the same fill, fee, slippage and cash conventions (see ``docs/vector.md``).
* :func:`sweep` runs a parameter grid in parallel on all cores and returns one row of headline
  statistics per combination.
* :class:`SignalData`, :class:`Signals` and :class:`Sizing` are the strategy contract.

Importing this package imports neither numba nor any kernel; kernels compile on first use and
are cached on disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradeloom.vector.signals import SignalData, Signals, SignalStrategy, Sizing, signal_data

if TYPE_CHECKING:
    from tradeloom.vector.engine import run_signals
    from tradeloom.vector.sweeps import sweep

__all__ = [
    "SignalData",
    "SignalStrategy",
    "Signals",
    "Sizing",
    "run_signals",
    "signal_data",
    "sweep",
]


def __getattr__(name: str) -> object:
    # Lazy, so that strategies can import the contract without importing numba.
    if name == "run_signals":
        from tradeloom.vector.engine import run_signals

        return run_signals
    if name == "sweep":
        from tradeloom.vector.sweeps import sweep

        return sweep
    raise AttributeError(f"module 'tradeloom.vector' has no attribute {name!r}")
