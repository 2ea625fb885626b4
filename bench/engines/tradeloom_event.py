"""tradeloom's event engine on the benchmark workload: ``SmaCrossover`` through ``run_backtest``.

Run with the workspace's Python: ``uv run python bench/engines/tradeloom_event.py --data FILE``.
Prints one JSON line (see ``_common.report``). ``loop_s`` is ``result.timings["loop"]``: the
bar loop alone; building the result frames and metrics afterwards is ``post_s``.
"""

from __future__ import annotations

from _common import FAST, QUANTITY, SLOW, clock, parse_args, report

T0 = clock()
from importlib.metadata import version  # noqa: E402

from tradeloom.api import run_backtest  # noqa: E402
from tradeloom.data import ParquetSource  # noqa: E402
from tradeloom_strategies import SmaCrossover  # noqa: E402

IMPORT_S = clock() - T0


def main(stream: bool = False) -> None:
    """``stream``: read the file in chunks during the loop (``run.stream = "always"``); the
    loop time then includes reading and validating the bars."""
    args = parse_args(__doc__.splitlines()[0])
    t0 = clock()
    source = ParquetSource(path=args.data, symbol="BENCH")
    market = source if stream else source.load()
    strategy = SmaCrossover(fast=FAST, slow=SLOW, quantity=QUANTITY)
    setup_s = clock() - t0
    result = run_backtest(market, strategy, stream="always" if stream else "never")
    trades = result.trades
    pnl = ((trades["exit_price"] - trades["entry_price"]) * trades["quantity"]).sum()
    report(
        engine="tradeloom-stream" if stream else "tradeloom-event",
        version=version("tradeloom"),
        bars=len(result.equity),
        round_trips=len(trades),
        pnl=pnl,
        import_s=IMPORT_S,
        setup_s=setup_s + result.timings["load"],
        loop_s=result.timings["loop"],
        post_s=result.timings["results"],
    )


if __name__ == "__main__":
    main()
