"""tradeloom's vector engine on the benchmark workload: ``SmaCrossover`` through
``tradeloom.vector.run_signals``.

Run with the workspace's Python: ``uv run python bench/engines/tradeloom_vector.py --data FILE``.
``run_signals(market, strategy)`` returns the same result object as ``run_backtest`` with the
same ``timings`` keys. ``loop_s`` is the first call in the process (numba's compilation, or
loading it from numba's on-disk cache, included: that is what a user pays); the call is then
repeated and reported as ``warm_loop_s``, its results checked against the first call's.
"""

from __future__ import annotations

from _common import FAST, QUANTITY, SLOW, clock, parse_args, report

T0 = clock()
from importlib.metadata import version  # noqa: E402

from tradeloom.data import ParquetSource  # noqa: E402
from tradeloom.vector import run_signals  # noqa: E402
from tradeloom_strategies import SmaCrossover  # noqa: E402

IMPORT_S = clock() - T0


def closed_trades(result) -> tuple[int, float]:
    trades = result.trades
    pnl = ((trades["exit_price"] - trades["entry_price"]) * trades["quantity"]).sum()
    return len(trades), float(pnl)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    t0 = clock()
    market = ParquetSource(path=args.data, symbol="BENCH").load()
    setup_s = clock() - t0

    # fallback=False: a strategy the vector engine cannot run is an error here, never a silent
    # run of the event engine under the vector engine's name
    first = run_signals(
        market, SmaCrossover(fast=FAST, slow=SLOW, quantity=QUANTITY), fallback=False
    )
    round_trips, pnl = closed_trades(first)
    warm = run_signals(
        market, SmaCrossover(fast=FAST, slow=SLOW, quantity=QUANTITY), fallback=False
    )
    if closed_trades(warm) != (round_trips, pnl):
        raise SystemExit("tradeloom-vector: the warm call disagrees with the first call")

    report(
        engine="tradeloom-vector",
        version=version("tradeloom"),
        bars=sum(len(frame) for frame in market.frames.values()),
        round_trips=round_trips,
        pnl=pnl,
        import_s=IMPORT_S,
        setup_s=setup_s + first.timings["load"],
        loop_s=first.timings["loop"],
        post_s=first.timings["results"],
        warm_loop_s=warm.timings["loop"],
    )


if __name__ == "__main__":
    main()
