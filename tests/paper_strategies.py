"""Test-only strategies for the paper-session tests (``test_paper.py``, ``test_paper_crash.py``),
and the small builders those tests share.

The runner builds strategies through the plugin host, so :func:`paper_host` registers these
next to the installed components (names start with ``test-``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tradeloom.components import Capabilities, Kind, Mode, Params
from tradeloom.execution import SimulatedBroker
from tradeloom.live.replay import ReplaySource
from tradeloom.model import Bar, OrderStatus, OrderUpdate
from tradeloom.plugins import ComponentSpec, PluginHost
from tradeloom.strategy import Context, Strategy


class Sleepy(Strategy):
    """Sleeps ``sleep_ms`` (real time) in every bar, longer than a paced bar interval, so bars
    pile up behind it; trades a fixed pattern (buy ``quantity`` every 5th bar, sell it back 2
    bars later) so its fills can be compared with a backtest."""

    class Params(Params):
        sleep_ms: float = 10.0
        quantity: float = 1.0

    def on_start(self, ctx: Context) -> None:
        self.seen = 0

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        time.sleep(self.params.sleep_ms / 1000)
        self.seen += 1
        if self.seen % 5 == 0:
            ctx.buy(bar.symbol, self.params.quantity)
        elif self.seen % 5 == 2 and ctx.quantity(bar.symbol) > 0:
            ctx.sell(bar.symbol, self.params.quantity)


class BuyEveryBar(Strategy):
    """Every bar: cancels its working orders, then places a limit buy far below the market (an
    order that adds risk and never fills). Keeps what happened to its orders."""

    class Params(Params):
        quantity: float = 1.0

    def on_start(self, ctx: Context) -> None:
        self.placed: list[str] = []
        self.refused: list[tuple[str, str]] = []
        self.canceled: list[str] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        for order in ctx.open_orders(bar.symbol):
            ctx.cancel(order)
        order = ctx.buy(bar.symbol, self.params.quantity, limit=round(bar.close * 0.5, 2))
        if order.client_order_id.endswith("-warmup"):
            return
        self.placed.append(order.client_order_id)

    def on_order(self, ctx: Context, update: OrderUpdate) -> None:
        order = update.order
        if order.status is OrderStatus.REJECTED:
            self.refused.append((order.client_order_id, order.reason or ""))
        elif order.status is OrderStatus.CANCELED:
            self.canceled.append(order.client_order_id)


class Flood(Strategy):
    """Floods the broker: ``per_bar`` limit buys far below the market every bar (they stay
    working). Keeps the client order id of every order it placed, in order."""

    class Params(Params):
        per_bar: int = 5
        quantity: float = 1.0

    def on_start(self, ctx: Context) -> None:
        self.placed: list[str] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        for _ in range(self.params.per_bar):
            order = ctx.buy(bar.symbol, self.params.quantity, limit=round(bar.close * 0.5, 2))
            if not order.client_order_id.endswith("-warmup"):
                self.placed.append(order.client_order_id)


class Holder(Strategy):
    """A long-lived position: buys ``quantity`` on its first bar and a GTC limit buy far below
    the market that stays working, then holds; sells half on bar ``sell_at``. Records what it
    saw when it started (a restart's rebuilt state)."""

    class Params(Params):
        quantity: float = 10.0
        sell_at: int = 40

    def on_start(self, ctx: Context) -> None:
        self.started_with = {
            "positions": {s: (p.quantity, p.avg_price) for s, p in ctx.positions().items()},
            "cash": ctx.cash,
            "working": sorted(
                (o.client_order_id, o.side.value, o.quantity, o.limit_price)
                for o in ctx.open_orders()
            ),
        }
        self.seen = 0

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.seen += 1
        if self.seen == 1:
            ctx.buy(bar.symbol, self.params.quantity)
            ctx.buy(bar.symbol, self.params.quantity, limit=round(bar.close * 0.5, 2))
        elif self.seen == self.params.sell_at:
            ctx.sell(bar.symbol, self.params.quantity / 2)


class Faulty(Strategy):
    """Buys ``quantity`` on its first bar and keeps a limit buy far below the market working,
    then raises on bar ``fail_at``: the runner's fault policy decides what happens next."""

    class Params(Params):
        quantity: float = 10.0
        fail_at: int = 5

    def on_start(self, ctx: Context) -> None:
        self.seen = 0

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.seen += 1
        if self.seen == 1:
            ctx.buy(bar.symbol, self.params.quantity)
            ctx.buy(bar.symbol, self.params.quantity, limit=round(bar.close * 0.5, 2))
        elif self.seen >= self.params.fail_at:
            raise RuntimeError("a bug in the strategy")


class LiveCapableBroker(SimulatedBroker):
    """The simulated broker declaring live trading (to reach the runner's ``--live`` gate)."""

    capabilities = Capabilities(modes=frozenset(Mode), short_selling=True)


class LiveCapableReplay(ReplaySource):
    """The replay source declaring live feeds (to reach the runner's ``--live`` gate)."""

    capabilities = Capabilities(modes=frozenset(Mode), multi_symbol=True)


TEST_STRATEGIES = {
    "test-sleepy": Sleepy,
    "test-buy-every-bar": BuyEveryBar,
    "test-flood": Flood,
    "test-holder": Holder,
    "test-faulty": Faulty,
}


TEST_COMPONENTS = [
    *((Kind.STRATEGY, name, cls) for name, cls in TEST_STRATEGIES.items()),
    (Kind.BROKER, "test-live-simulated", LiveCapableBroker),
    (Kind.DATA_SOURCE, "test-live-replay", LiveCapableReplay),
]


def paper_host() -> PluginHost:
    """The installed plugins plus the test components above."""
    host = PluginHost()
    for kind, name, cls in TEST_COMPONENTS:
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        spec = ComponentSpec(kind, name, cls, "tradeloom-tests", "0", "tradeloom-tests:paper", doc)
        host.registry.add(spec)
    return host


# --- deployments ---------------------------------------------------------------------------------


def deployment(
    *,
    mode: str = "paper",
    symbols: tuple[str, ...] = ("IBM",),
    speed: float = 0,
    strategy: str = "sma-crossover",
    params: str = "fast = 5, slow = 20, quantity = 10",
    start: str = "2010-01-01",
    end: str = "2010-12-31",
    replay: str = "",
) -> str:
    """A deployment on the bundled ``us-stocks-daily`` data, replayed (``replay``: extra replay
    params, e.g. ``"stall_after = 10"``)."""
    names = ", ".join(f'"{s}"' for s in symbols)
    extra = f", {replay}" if replay else ""
    return f"""mode = "{mode}"

[data]
type = "replay"
params = {{ speed = {speed:g}{extra}, source = {{ type = "dataset", params = {{ name = "us-stocks-daily", symbols = [{names}] }} }} }}

[strategy]
type = "{strategy}"
params = {{ {params} }}

[run]
start = "{start}"
end = "{end}"
"""


def write_pair(folder: Path, name: str, text: str) -> tuple[Path, Path]:
    """The paper deployment ``text`` and the same deployment as a backtest, as files."""
    folder.mkdir(parents=True, exist_ok=True)
    paper = folder / f"{name}.toml"
    paper.write_text(text, encoding="utf-8")
    backtest = folder / f"{name}-backtest.toml"
    backtest.write_text(text.replace('mode = "paper"', 'mode = "backtest"', 1), encoding="utf-8")
    return paper, backtest


def run_until(runner: Any, condition: Any, timeout: float = 60.0) -> Any:
    """Run ``runner`` (a PaperRunner) here; another thread calls ``runner.stop()`` once
    ``condition(runner)`` holds (or after ``timeout`` seconds). Returns the summary."""
    import threading

    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            try:
                if condition(runner):
                    break
            except (AttributeError, RuntimeError):  # not started yet, or mid-update
                pass
            time.sleep(0.002)
        if not done.is_set():
            runner.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return runner.run()
    finally:
        done.set()
        watcher.join()


def fill_key(symbol: str, side: str, quantity: float, price: float, ts: int) -> tuple:
    """What makes two fills the same trade, whatever their ids."""
    return (int(ts), symbol, side, float(quantity), float(price))


def backtest_fills(result) -> list[tuple]:  # type: ignore[no-untyped-def]
    """A backtest's fills as :func:`fill_key` tuples, sorted (time first)."""
    frame = result.fills
    times = pd.DatetimeIndex(frame["time"]).as_unit("ns").asi8.tolist()
    columns = (frame["symbol"], frame["side"], frame["quantity"], frame["price"], times)
    return sorted(fill_key(*row) for row in zip(*columns, strict=True))


def journal_fills(store, run_id: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    """A session's journaled fills as :func:`fill_key` tuples, sorted (time first)."""
    rows = store.table("fills", run_id)
    return sorted(
        fill_key(r["symbol"], r["side"], r["quantity"], r["price"], r["ts"]) for r in rows
    )


# --- runner processes for the crash tests (test_paper_crash.py) -----------------------------------


def install_crash_point(point: str) -> None:
    """Make this process SIGKILL itself at ``point``:

    * ``write-ahead:N``: right after the N-th order of this process was journaled (committed),
      before it reaches the paper broker;
    * ``step:N``: right before the N-th step that has order updates or fills is committed (the
      orders were sent and acknowledged, maybe filled, in memory only).
    """
    from tradeloom.store import db

    kind, _, number = point.partition(":")
    target, count = int(number), 0

    def crash() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if kind == "write-ahead":
        journal_order = db.Store.journal_order

        def journal_order_then_crash(self: Any, run_id: str, order: Any) -> None:
            nonlocal count
            journal_order(self, run_id, order)
            count += 1
            if count >= target:
                crash()

        db.Store.journal_order = journal_order_then_crash  # type: ignore[method-assign]
    elif kind == "step":
        journal_step = db.Store.journal_step

        def crash_before_step(self: Any, run_id: str, orders: Any, fills: Any, cursor: int) -> int:
            nonlocal count
            if orders or fills:
                count += 1
                if count >= target:
                    crash()
            return journal_step(self, run_id, orders, fills, cursor)

        db.Store.journal_step = crash_before_step  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown crash point {point!r}")


def fork_server() -> None:
    """A process that has imported tradeloom once and forks one child per command, so a test
    can start (and SIGKILL) many runners without paying the imports each time.

    Reads one JSON command per line on stdin, ``{"argv": [...], "crash_at": null}``; forks a
    child that runs ``tradeloom <argv>`` exactly as the console script does (``main(argv)``,
    output to /dev/null), after :func:`install_crash_point` if ``crash_at`` is given; writes
    ``pid <child pid>``, then ``exit <code>`` when the child ends (``-9``: SIGKILLed).
    Run as ``python -c "import paper_strategies; paper_strategies.fork_server()"`` with this
    folder on ``PYTHONPATH``; the first line it writes is ``ready``."""
    import json
    import sys

    from tradeloom.cli import main as cli_main

    # What `tradeloom run` imports on its way: loaded here, before any fork.
    from tradeloom.config import load_deployment  # noqa: F401
    from tradeloom.live import replay, runner, session  # noqa: F401
    from tradeloom.store import Store  # noqa: F401

    PluginHost()  # the installed plugins' modules
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: a runner process
            code = 70
            try:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                if command.get("crash_at"):
                    install_crash_point(command["crash_at"])
                code = cli_main.main(command["argv"])
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)
