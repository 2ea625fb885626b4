"""Strategies for the sandbox tests (``test_sandbox.py``), loaded by the sandbox's child as
``sandbox_strategies:ClassName``: well-behaved probes that read everything a Context offers,
and misbehaving ones that raise, hang, hog memory or CPU, snoop for secrets or forge ids.

Each reports what it saw through ``ctx.log`` (one line per event), which the sandbox carries
back to the runner (``SandboxedStrategy.logs``) and an in-process run logs through loguru.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from tradeloom.components import Params
from tradeloom.errors import RunError
from tradeloom.model import Bar, Fill, OrderUpdate
from tradeloom.strategy import Context, Strategy


def _order(o: object) -> str:
    """An order as text: every field that matters, floats exactly."""
    if o is None:
        return "None"
    fields = ("client_order_id", "symbol", "side", "quantity", "type", "limit_price",
              "stop_price", "tif", "strategy_id", "status", "filled_quantity", "avg_fill_price",
              "created_ts", "updated_ts", "reason", "oco_group", "parent_id")  # fmt: skip
    return "|".join(repr(getattr(o, f)) for f in fields)


class Probe(Strategy):
    """Reads every part of the Context at every timestamp and logs it, and runs a script of
    orders, a replace, a cancel, an OCO pair and a bracket on the first symbol. Overrides
    ``on_bars``, ``on_fill`` and ``on_order``."""

    def on_start(self, ctx: Context) -> None:
        self.kept = None
        self.step = 0
        ctx.log.info(f"start {ctx.ts} {ctx.symbols}")

    def on_bars(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.step += 1
        s0 = ctx.symbols[0]
        parts = [str(ctx.ts), str(ctx.now), repr(sorted(bars))]
        for s in ctx.symbols:
            parts.append(f"{s}:{ctx.bar_count(s)}:{ctx.last_price(s)!r}:{ctx.fx_rate(s)!r}")
            for field in ("open", "high", "low", "close", "volume"):
                parts.append(repr(ctx.history(s, 3, field).tolist()))
            parts.append(repr(len(ctx.history(s))))
            parts.append(repr(ctx.position(s)))
            parts.append(repr(ctx.quantity(s)))
            parts.append(repr(ctx.max_order_size(s, "buy")))
            parts.append(repr(ctx.max_order_size(s, "sell")))
            parts.append(repr([_order(o) for o in ctx.open_orders(s)]))
        parts.append(repr(sorted(ctx.positions().items())))
        parts.append(f"{ctx.cash!r} {ctx.equity!r} {ctx.buying_power!r} {ctx.account()!r}")
        if ctx.bar_count(s0) > 20:
            parts.append(repr(ctx.size_fixed_fractional(s0, 0.01, ctx.last_price(s0) * 0.95)))
            parts.append(repr(ctx.size_atr(s0, 0.01, window=5)))
            parts.append(repr(ctx.size_volatility_target(s0, 0.1, window=10)))
        parts.append(_order(ctx.get_order(self.kept.client_order_id) if self.kept else None))
        ctx.log.info(" ".join(parts))
        self._script(ctx, s0)

    def _script(self, ctx: Context, s0: str) -> None:
        price = ctx.last_price(s0)
        step = self.step
        if step == 3:
            self.kept = ctx.buy(s0, 7, limit=round(price * 0.5, 2))
            ctx.log.info("kept " + _order(self.kept))
        elif step == 5:
            ctx.replace(self.kept, quantity=5, limit=round(price * 0.6, 2))
            ctx.log.info("open after replace " + repr([_order(o) for o in ctx.open_orders()]))
        elif step == 7:
            ctx.cancel(self.kept)
            ctx.log.info("after cancel " + _order(ctx.get_order(self.kept.client_order_id)))
        elif step == 8:
            placed = ctx.order_target_percent(s0, 0.3)
            ctx.log.info("target " + _order(placed))
            ctx.log.info("bp after " + repr(ctx.buying_power))
        elif step == 11:
            held = ctx.quantity(s0)
            pair = ctx.oco(s0, -held, limit=round(price * 1.5, 2), stop=round(price * 0.5, 2))
            ctx.log.info("oco " + " ".join(_order(o) for o in pair))
        elif step == 14:
            legs = ctx.bracket(
                ctx.symbols[-1], 3, take_profit=round(ctx.last_price(ctx.symbols[-1]) * 1.02, 2),
                stop_loss=round(ctx.last_price(ctx.symbols[-1]) * 0.98, 2),
            )  # fmt: skip
            ctx.log.info("bracket " + " ".join(_order(o) for o in legs))
        elif step == 16:
            try:
                ctx.cancel("nobody-1")
            except RunError as exc:
                ctx.log.info(f"cancel refused: {exc}")
            try:
                ctx.order("NOPE", 1)
            except RunError as exc:
                ctx.log.info(f"order refused: {exc}")
            try:
                ctx.order(s0, 1, tif="forever")
            except RunError as exc:
                ctx.log.info(f"tif refused: {exc}")
        elif step == 18:
            for o in ctx.open_orders():
                ctx.cancel(o)
            ctx.log.info("flat target " + _order(ctx.order_target(s0, 0)))
        elif step == 19:
            ctx.order(s0, 4, at="close")
            ctx.order(s0, -4, trail_percent=5.0)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        ctx.log.info(f"fill {fill!r} {ctx.quantity(fill.symbol)!r} {ctx.cash!r}")

    def on_order(self, ctx: Context, update: OrderUpdate) -> None:
        ctx.log.info(f"update {_order(update.order)} {update.previous!r} {update.note!r}")

    def on_stop(self, ctx: Context) -> None:
        ctx.log.info(f"stop {ctx.ts} {ctx.equity!r} {len(ctx.open_orders())}")


class Raiser(Strategy):
    """Raises on every bar (SB-01)."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        raise RuntimeError(f"boom at bar {ctx.bar_count(bar.symbol)}")


class Misbehave(Strategy):
    """Behaves for ``after`` bars, then does ``what`` on the next bar (SB-02): ``"spin"`` (an
    infinite loop), ``"allocate"`` (``mb`` megabytes at once) or ``"burn"`` (CPU in a loop
    that checks nothing)."""

    class Params(Params):
        what: str = "spin"
        after: int = 2
        mb: int = 2048

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.bar_count(bar.symbol) <= self.params.after:
            ctx.log.info(f"fine at {ctx.bar_count(bar.symbol)}")
            return
        what = self.params.what
        if what == "spin":
            while True:
                pass
        elif what == "allocate":
            block = bytearray(self.params.mb << 20)
            ctx.log.info(f"allocated {len(block)}")
        elif what == "burn":
            x = 0
            while True:
                x = (x * 7 + 1) % 1_000_003


class Snoop(Strategy):
    """Looks for secrets and a way out (SB-03) on its first bar and logs one JSON line with
    everything it could get."""

    class Params(Params):
        key_file: str
        port: int
        env_name: str = "TL_CANARY_KEY"

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.bar_count(bar.symbol) != 1:
            return
        found: dict[str, object] = {"uid": os.getuid(), "cwd": os.getcwd()}
        found["env"] = dict(os.environ)
        found["env_secret"] = os.environ.get(self.params.env_name, "")
        found["key_file"] = self._read(self.params.key_file)
        try:
            with open(self.params.key_file, "rb") as f:
                key = f.read()
        except OSError:
            key = b""
        found["parent_environ"] = self._read(f"/proc/{os.getppid()}/environ")
        found["init_environ"] = self._read("/proc/1/environ")
        try:
            found["root_home"] = sorted(os.listdir("/root"))
        except OSError as exc:
            found["root_home"] = f"{type(exc).__name__}: {exc}"
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.params.port), timeout=1.0) as conn:
                conn.sendall(b"hello from the sandbox")
                found["socket"] = "connected"
        except OSError as exc:
            found["socket"] = f"{type(exc).__name__}: {exc}"
        try:
            import ccxt  # noqa: F401  # a broker SDK, if installed

            found["broker_sdk"] = "imported ccxt"
        except ImportError as exc:
            found["broker_sdk"] = f"{type(exc).__name__}: {exc}"
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            found["fork"] = "forked"
        except OSError as exc:
            found["fork"] = f"{type(exc).__name__}: {exc}"
        ctx.log.info(json.dumps(found, sort_keys=True))
        # The only door out is the Context: the secret bytes it got, had it got any.
        ctx.log.info(f"leak bytes {len(found['env_secret']) + len(key)}")

    @staticmethod
    def _read(path: str) -> str:
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"


class Forger(Strategy):
    """Tries to act as another strategy or lift a halt (SB-04). ``how``: ``"api"`` (through the
    Context only: a rewritten ``ctx.strategy_id``, another strategy's order id, the engine
    behind the Context), ``"raw-order"`` (an order frame written straight to the pipe with
    forged ids) or ``"raw-resume"`` (a frame asking to resume the halted scope)."""

    class Params(Params):
        how: str = "api"
        victim: str = "victim"

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if bar.symbol != ctx.symbols[0]:
            return
        n = ctx.bar_count(bar.symbol)
        victim = self.params.victim
        if self.params.how == "api":
            if n == 2:
                ctx.strategy_id = victim  # rewrite who we are, then order
                placed = ctx.buy(bar.symbol, 1)
                ctx.log.info("placed " + _order(placed))
                try:
                    ctx.cancel(f"{victim}-1")
                except RunError as exc:
                    ctx.log.info(f"cancel refused: {exc}")
                engine = getattr(ctx, "_engine", None)
                resume = getattr(getattr(engine, "risk", None), "resume", None)
                ctx.log.info(f"risk.resume reachable: {resume is not None}")
            if n >= 4:  # after the runner halted this strategy
                placed = ctx.buy(bar.symbol, 1)
                ctx.log.info("after halt " + _order(placed))
            return
        if n != 2:
            return
        from tradeloom.live import protocol

        pipe = _child_pipe()
        if self.params.how == "raw-order":
            pipe.send(
                protocol.frame(
                    json.dumps({
                        "t": "order", "symbol": bar.symbol, "quantity": 1, "limit": None,
                        "stop": None, "trail_amount": None, "trail_percent": None, "tif": "gtc",
                        "at": None, "strategy_id": victim, "client_order_id": f"{victim}-99",
                    }).encode()
                )
            )  # fmt: skip
        else:
            pipe.send(protocol.frame(b'{"t":"resume","scope":"strategy:s"}'))
        ctx.log.info(f"reply {pipe.recv()!r}")


def _child_pipe() -> object:
    """The child's own pipe object: what a strategy that reads the framework's source can
    always find (it runs in the same process)."""
    import gc

    for obj in gc.get_objects():
        if type(obj).__name__ == "_Pipe" and hasattr(obj, "wfd"):
            return obj
    raise LookupError("no pipe")


class HistoryEcho(Strategy):
    """Logs the last ``n`` bars of every field of every symbol at every bar (splits rescale the
    bars before them; a streamed run keeps only the latest ``run.history_bars``), and trades a
    little so that positions change."""

    class Params(Params):
        n: int = 30

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        n = self.params.n
        rows = [
            ctx.history(s, n, f).tolist() for s in ctx.symbols for f in ("open", "close", "volume")
        ]
        ctx.log.info(
            f"{bar.symbol} {ctx.bar_count(bar.symbol)} {ctx.last_price(bar.symbol)!r} {rows!r}"
        )
        if ctx.bar_count(bar.symbol) % 50 == 0:
            ctx.order_target(bar.symbol, 10 if ctx.quantity(bar.symbol) <= 0 else 0)


class Noop(Strategy):
    """Overrides ``on_bar`` and does nothing: the cost of a callback round trip alone."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        pass
