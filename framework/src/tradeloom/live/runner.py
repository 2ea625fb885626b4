"""The paper runner: a deployment played in real (or replayed) time on the same kernel as a
backtest, journaled write-ahead, restartable after a crash, stoppable by an operator.

How a session runs:

* The data source's :meth:`~tradeloom.data.base.DataSource.stream` delivers one batch of bars
  per timestamp (paced by the replay source's speed, or real time). An asyncio task reads it
  into a queue; the event engine — the very one backtests use, with the simulated broker as
  the paper broker — runs in a worker thread and takes the batches as they come (several at
  once when it falls behind: those are counted as late).
* Every order a strategy sends passes the runner's risk control, then is **journaled before
  it reaches the broker** (version 0, with an audit record). After each step the order
  updates, the fills and the session's *cursor* (the market time fully processed) are written
  in **one transaction**.
* **A restart** (same ``--session``) rebuilds the account from the journal before any
  strategy runs: positions and cash from the fills, working orders from their last states,
  the id counters; an order journaled but never acknowledged (the runner died between the
  two) is closed as never sent — never blindly resent. The strategies restart with the bars
  up to the cursor as history, and the feed resumes after it. A step that was not committed
  is replayed: the paper broker is deterministic, so its fills come back with the same ids
  and the journal keeps one of each. The journal is then checked against the rebuilt broker
  (every fill's order known, filled quantities equal the fills): a difference stops the start
  with a report instead of trading.
* **The operator** leaves commands in the session folder (``tradeloom kill``,
  ``tradeloom resume``). A kill halts the account at once — the runner's watcher sets HALTED
  (persisted) between two orders of a flood — then cancels every working order (and
  flattens, if asked) at the next step. HALTED survives restarts.
* SIGTERM / SIGINT stop the session after the current step: the journal is flushed, working
  orders are kept (journaled, for the restart) unless ``cancel_on_stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from loguru import logger

from tradeloom.api import build_named
from tradeloom.components import Mode
from tradeloom.config import ResolvedDeployment
from tradeloom.data import DataSource, MarketData
from tradeloom.data.base import BAR_COLUMNS
from tradeloom.engine.backtest import BacktestEngine
from tradeloom.errors import ConfigError, RunError, TradeloomError
from tradeloom.execution import SimulatedBroker
from tradeloom.live.session import Session, write_json
from tradeloom.model import Bar, Order, OrderStatus
from tradeloom.plugins import PluginHost
from tradeloom.risk.control import RiskControl, TradingState
from tradeloom.store import Store

log = logger.bind(component="tradeloom.runner")

_STOP = object()


@dataclass
class SessionSummary:
    """What a session did when it ended."""

    session: str
    run_id: str
    status: str
    """``finished`` (the data ended), ``stopped`` (a signal) or ``failed``."""
    restarted: bool
    steps: int
    bars: int
    late_batches: int
    orders: int
    fills: int
    positions: dict[str, float] = field(default_factory=dict)
    equity: float = 0.0
    error: str = ""


class PaperRunner:
    """Runs one deployment as a paper session (``mode = "paper"``)."""

    def __init__(
        self,
        resolved: ResolvedDeployment,
        *,
        session: Session,
        store: Store,
        host: PluginHost | None = None,
        live: bool = False,
        sandbox: bool = False,
        cancel_on_stop: bool = False,
        stale_after: float | None = None,
        on_fault: Literal["halt", "cancel", "flatten"] = "cancel",
        reconcile_every: int = 100,
        max_batch: int = 256,
        poll_seconds: float = 0.05,
        status_seconds: float = 0.5,
    ) -> None:
        mode = Mode(resolved.mode)
        if mode is Mode.BACKTEST:
            raise ConfigError(
                'this deployment says mode = "backtest"; run it with `tradeloom backtest`, or set '
                'mode = "paper" for a paper session',
                path="mode",
            )
        broker = resolved.broker.build()
        if mode is Mode.LIVE:
            if Mode.LIVE not in type(broker).capabilities.modes:
                raise ConfigError(
                    f"broker {resolved.broker.spec.name!r} cannot trade live; live sessions need "
                    "a live broker plugin",
                    path="broker.type",
                )
            if not live:
                raise ConfigError(
                    'mode = "live" trades real money: pass --live to confirm', path="mode"
                )
        if not isinstance(broker, SimulatedBroker):
            raise ConfigError(
                f"broker {resolved.broker.spec.name!r}: paper sessions use the simulated broker "
                'for now (type = "simulated")',
                path="broker.type",
            )
        self.resolved = resolved
        self.session = session
        self.store = store
        self.host = host or PluginHost()
        self.broker = broker
        self.sandbox = sandbox
        self.cancel_on_stop = cancel_on_stop
        self.stale_after = stale_after
        if on_fault not in ("halt", "cancel", "flatten"):
            raise ConfigError(
                f"on_fault {on_fault!r}: use halt, cancel (halt and cancel the strategy's working "
                "orders) or flatten (also close its positions)",
                path="--on-fault",
            )
        self.on_fault = on_fault
        self.reconcile_every = reconcile_every
        self.max_batch = max_batch
        self.poll = poll_seconds
        self.status_every = status_seconds
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._versions: dict[str, int] = {}
        self._log_done = 0
        self._fills_done = 0
        self._steps = 0
        self._bars = 0
        self._late = 0
        self._cursor: int | None = None
        self._last_status = 0.0
        self._restarted = False
        self._restoring = False
        self._reconciled_at = 0
        self._status = "running"
        self.run_id = ""
        self.engine: BacktestEngine | None = None
        self.control: RiskControl | None = None

    # --- entry points ---------------------------------------------------------------------------
    def run(self) -> SessionSummary:
        """Run the session until the data ends or a signal stops it."""
        return asyncio.run(self.main())

    def stop(self) -> None:
        """Ask the session to stop after the current step (thread-safe)."""
        self._stop.set()
        self._queue.put(_STOP)

    async def main(self) -> SessionSummary:
        session = self.session
        session.claim()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                loop.add_signal_handler(sig, self.stop)
        try:
            return await self._main()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            session.release()

    async def _main(self) -> SessionSummary:
        resolved = self.resolved
        run = resolved.run
        source: DataSource = resolved.data.build()
        history = source.load(start=run.start, end=run.end)
        if not history.symbols:
            raise RunError("no bars to run on: the data is empty for the requested period")
        strategies = [(c.id or c.spec.name, c.build()) for c in resolved.strategies]
        if self.sandbox:
            from tradeloom.live.sandbox import sandboxed

            strategies = sandboxed(strategies)
        rules = build_named(resolved.risk)
        control = RiskControl(rules, state_file=self.session.state_file, on_alert=self._alert)
        self.control = control
        if self.sandbox:  # the fault policy: halt the strategy (cancel, flatten if configured)
            cancel = self.on_fault in ("cancel", "flatten")
            flatten = self.on_fault == "flatten"
            for sid, strategy in strategies:
                strategy.on_fault = (  # type: ignore[attr-defined]
                    lambda reason, sid=sid: control.halt(
                        f"strategy:{sid}", f"strategy faulted: {reason}", by="runner",
                        rule="sandbox", cancel=cancel, flatten=flatten,
                    )
                )  # fmt: skip
        config = resolved.to_dict(mask_secrets=True)
        config_hash = resolved.config_hash()
        state = self._open_run(config, config_hash, strategies)
        logger.configure(extra={"run_id": self.run_id, "session": self.session.name})
        cursor = state.cursor if state is not None else None
        warm = _until(history, cursor) if cursor is not None else None
        market = _LiveMarket(history.symbols, self._chunks(warm), history.actions)
        broker = self.broker
        if resolved.costs:
            broker.use_costs(build_named(resolved.costs))
        if resolved.fill_models:
            broker.use_fill_models(build_named(resolved.fill_models))
        engine = BacktestEngine(
            market,  # type: ignore[arg-type]
            strategies,
            broker,
            control,
            initial_cash=run.initial_cash,
            currency=run.currency,
            history_bars=run.history_bars,
        )
        engine.cancel_at_end = self.cancel_on_stop
        engine.require_bars = False
        engine.order_log = []
        engine.before_send = self._write_ahead
        if state is not None:
            self._restoring = True
            engine.on_started = lambda: self._restore(engine, state, history.actions)
        self.engine = engine
        clock = _clock_for(source)
        self._clock = clock
        start = pd.Timestamp(cursor + 1, tz="UTC") if cursor is not None else run.start
        feed = asyncio.create_task(self._feed(source, history.symbols, start, run.end, clock))
        watcher = asyncio.create_task(self._watch_commands())
        error = ""
        try:
            await asyncio.to_thread(engine.run)
            self._status = "stopped" if self._stop.is_set() else "finished"
        except Exception as exc:
            self._status = "failed"
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._stop.set()
            feed.cancel()
            watcher.cancel()
            for task in (feed, watcher):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._flush(final=True)
            metrics = {"steps": self._steps, "bars": self._bars, "late_batches": self._late}
            self.store.finish_run(self.run_id, self._status, metrics, error)
            self._write_status(force=True)
            for _, strategy in strategies:
                close = getattr(strategy, "close", None)
                if callable(close):
                    close()
        ledger = broker.ledger
        return SessionSummary(
            self.session.name, self.run_id, self._status, self._restarted, self._steps,
            self._bars, self._late, len(engine.orders), len(engine.fills),
            {s: p.quantity for s, p in ledger.positions().items()}, ledger.equity(), error,
        )  # fmt: skip

    # --- journal --------------------------------------------------------------------------------
    def _open_run(self, config: dict[str, Any], config_hash: str, strategies: list) -> Any:  # type: ignore[type-arg]
        """A new session's run, or the journaled state of the one this session continues."""
        info = self.session.info()
        if info and info.get("run_id"):
            state = self.store.session_state(info["run_id"])
            if info.get("config_hash") != config_hash:
                raise ConfigError(
                    f"session {self.session.name!r} was started with another deployment "
                    f"(config hash {str(info.get('config_hash'))[:12]}…, now {config_hash[:12]}…): "
                    "a restart must run the same deployment; start a new --session to change it",
                    path="--session",
                )
            self.run_id = state.run_id
            self._restarted = True
            self.store.audit("session.restarted", {"session": self.session.name}, self.run_id)
            log.warning("session {name} restarts run {run} after market time {cursor}",
                        name=self.session.name, run=self.run_id, cursor=state.cursor)  # fmt: skip
            return state
        from tradeloom.provenance import strategy_code

        self.run_id = uuid.uuid4().hex[:12]
        provenance = {
            "config_hash": config_hash,
            "plugins": sorted(
                {f"{c.spec.distribution} {c.spec.version}" for c in self.resolved.components()}
            ),
            **strategy_code([type(s) for _, s in strategies]),
        }
        self.store.begin_run(
            self.run_id, Mode(self.resolved.mode).value, config, provenance,
            title=f"session {self.session.name}",
        )  # fmt: skip
        write_json(
            self.session.info_file,
            {"run_id": self.run_id, "config_hash": config_hash, "session": self.session.name,
             "store": self.store.url if "@" not in self.store.url else None},
        )  # fmt: skip
        return None

    def _write_ahead(self, order: Order) -> None:
        """The engine is about to send ``order``: journal it first (committed)."""
        self.store.journal_order(self.run_id, order)
        self._versions[order.client_order_id] = 0

    def _flush(self, final: bool = False) -> None:
        """Journal what the last step did, with the cursor, in one transaction."""
        engine = self.engine
        if engine is None or engine.order_log is None:
            return
        log_ = engine.order_log
        states = []
        for order in log_[self._log_done :]:
            coid = order.client_order_id
            if order.status is OrderStatus.PENDING and coid in self._versions:
                continue  # written ahead
            version = self._versions.get(coid, -1) + 1
            self._versions[coid] = version
            states.append((order, version))
        fills = engine.fills[self._fills_done :]
        cursor = engine._last_ts if engine._last_ts is not None else self._cursor
        if cursor is None or (self._restoring and self._cursor is None):
            return  # nothing played yet (or a refused restart): the journal keeps its cursor
        if not states and not fills and cursor == self._cursor and not final:
            return
        self.store.journal_step(self.run_id, states, fills, cursor if cursor is not None else 0)
        self._log_done = len(log_)
        self._fills_done = len(engine.fills)
        self._cursor = cursor

    # --- restart --------------------------------------------------------------------------------
    def _restore(self, engine: BacktestEngine, state: Any, actions: list[Any]) -> None:
        """Rebuild the account from the journal, before any strategy runs: the fills, with the
        splits and cash dividends up to the cursor applied between them at their ex-dates."""
        broker = engine.broker
        ledger = broker.ledger
        done = [a for a in actions if state.cursor is not None and a.ex_ts <= state.cursor]
        i = 0
        for fill in state.fills:
            while i < len(done) and done[i].ex_ts <= fill.ts:
                _apply_action(ledger, done[i])
                i += 1
            ledger.apply_fill(fill)
        for action in done[i:]:
            _apply_action(ledger, action)
        engine.fills.extend(state.fills)
        self._fills_done = len(engine.fills)
        engine._cash = ledger.cash
        for symbol in engine.symbols:
            engine._qty[symbol] = ledger.quantity(symbol)
        restored, unknown = [], []
        for coid, (order, version) in state.orders.items():
            self._versions[coid] = version
            if order.status is OrderStatus.PENDING:
                unknown.append(order)
            else:
                restored.append(order)
            engine.orders[coid] = order
            sid, _, seq = coid.rpartition("-")
            if sid in engine._seq and seq.isdigit():
                engine._seq[sid] = max(engine._seq[sid], int(seq))
        broker.restore(restored, fills=_max_fill_seq(state.fills))
        now = engine.now
        for order in unknown:  # journaled, never acknowledged: closed, not resent
            closed = order.transition(
                OrderStatus.REJECTED, order.updated_ts or now,
                "outcome unknown after a restart: the paper broker never acknowledged it "
                "(the runner stopped in between); not resent",
            )  # fmt: skip
            broker.orders[order.client_order_id] = closed
            engine.orders[order.client_order_id] = closed
            assert engine.order_log is not None
            engine.order_log.append(closed)
        self._log_done = len(engine.order_log or []) - len(unknown)
        problems = _reconcile(state, broker)
        if problems:
            self.store.audit("session.reconcile_failed", {"problems": problems}, self.run_id)
            raise RunError(
                f"session {self.session.name!r}: the journal and the broker disagree, refusing to "
                "trade:\n  " + "\n  ".join(problems)
            )
        self._cursor = state.cursor
        self._restoring = False

    # --- the feed and the steps -----------------------------------------------------------------
    async def _feed(
        self, source: DataSource, symbols: list[str], start: Any, end: Any, clock: Any
    ) -> None:
        try:
            async for batch in source.stream(symbols, start=start, end=end, clock=clock):
                if self._stop.is_set():
                    break
                self._queue.put(batch)
        finally:
            self._queue.put(_STOP)

    def _chunks(self, warm: MarketData | None) -> Iterator[MarketData]:
        """The engine's chunks (in the engine's thread): warm-up history first, then the
        batches as they arrive; between two chunks the last step is journaled, operator
        commands and stale feeds are handled, and the status is written."""
        if warm is not None:
            warm.warmup = True
            yield warm
        pending: list[list[Bar]] = []
        while True:
            self._between_steps()
            if self._stop.is_set():  # after the current step, whatever is still queued
                return
            try:
                item = self._queue.get(timeout=self.poll)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            pending.append(item)
            ended = False
            while len(pending) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    ended = True
                    break
                pending.append(more)
            if len(pending) > 1 and not getattr(self._clock, "instant", False):
                self._late += len(pending) - 1  # paced bars that waited for the strategies
            self._steps += 1
            self._bars += sum(len(b) for b in pending)
            if self._monitor is not None:
                for batch in pending:
                    self._monitor.observe(batch)
            chunk = _market(pending)
            pending = []
            yield chunk
            if ended:
                self._between_steps()
                return

    _monitor: Any = None

    def _between_steps(self) -> None:
        self._flush()
        every = self.reconcile_every
        if (
            every
            and self._steps
            and self._steps % every == 0
            and self._steps != self._reconciled_at
        ):
            self._reconciled_at = self._steps
            self._reconcile_running()
        control = self.control
        engine = self.engine
        if control is not None and engine is not None:
            for path, command in self.session.commands():
                self._apply(command)
                path.unlink(missing_ok=True)
            pending = control.kill_pending
            if pending is not None:
                control.kill_pending = None
                report = control.kill(pending[0], flatten=pending[1])
                self.store.audit(
                    "operator.kill",
                    {"reason": pending[0], "canceled": list(report.canceled),
                     "residual": [list(r) for r in report.residual],
                     "flattened": list(report.flattened)},
                    self.run_id,
                )  # fmt: skip
                engine._deliver()
            if self.stale_after is not None:
                now = self._clock.now()
                if self._monitor is None and (now > 0 or engine._last_ts is not None):
                    from tradeloom.live.replay import FeedMonitor

                    # Watched from the session's first market time (a replay clock reads 0
                    # until its first bar), or from the cursor after a restart.
                    self._monitor = FeedMonitor(self.stale_after)
                    since = max(now, engine._last_ts or 0)
                    self._monitor.expect(engine.symbols, since)
                if self._monitor is not None:
                    self._monitor.apply(control, now)
        self._write_status()

    def _reconcile_running(self) -> None:
        """Periodic reconciliation: the positions the journal's fills add up to against the
        broker's. A difference halts the account (working orders canceled) and is audited."""
        engine, control = self.engine, self.control
        if engine is None or control is None:
            return
        journal = self.store.fill_positions(self.run_id)
        broker = {s: q for s, q in engine.broker.ledger.quantities().items()}
        problems = [
            f"{s}: journal {journal.get(s, 0.0):g}, broker {broker.get(s, 0.0):g}"
            for s in sorted(set(journal) | set(broker))
            if abs(journal.get(s, 0.0) - broker.get(s, 0.0))
            > 1e-9 * max(1.0, abs(broker.get(s, 0.0)))
        ]
        if problems:
            self.store.audit("session.reconcile_failed", {"problems": problems}, self.run_id)
            control.halt(
                "global", "reconciliation: journal and broker positions differ: "
                + "; ".join(problems), by="runner", rule="reconciliation", cancel=True,
            )  # fmt: skip
            engine._deliver()

    def _apply(self, command: dict[str, Any]) -> None:
        control = self.control
        assert control is not None
        action = command.get("action")
        if action == "kill":
            control.request_kill(  # HALTED now, if the watcher has not already; cancels next
                str(command.get("reason") or "operator kill switch"),
                flatten=bool(command.get("flatten")),
            )
        elif action == "resume":
            scope = str(command.get("scope") or "global")
            reason = str(command.get("reason") or "operator resume")
            control.resume(scope, reason)
            self.store.audit("operator.resume", {"scope": scope, "reason": reason}, self.run_id)
        else:
            log.warning("ignored an unknown operator command: {c}", c=command)

    async def _watch_commands(self) -> None:
        """The kill switch's priority path: a kill command halts the account at once (every
        order checked from now on is refused), even while a strategy is flooding orders in the
        engine's thread; the cancels follow at the next step."""
        control = self.control
        assert control is not None
        while not self._stop.is_set():
            for _path, command in self.session.commands():
                if command.get("action") == "kill" and control.state() is not TradingState.HALTED:
                    control.request_kill(
                        str(command.get("reason") or "operator kill switch"),
                        flatten=bool(command.get("flatten")),
                    )
            await asyncio.sleep(self.poll)

    # --- status ---------------------------------------------------------------------------------
    def _alert(self, event: Any) -> None:
        log.warning("risk alert [{scope}] {reason}", scope=event.scope, reason=event.reason)

    def _write_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < self.status_every:
            return
        self._last_status = now
        engine, control = self.engine, self.control
        status: dict[str, Any] = {
            "session": self.session.name, "run_id": self.run_id, "pid": os.getpid(),
            "mode": Mode(self.resolved.mode).value, "status": self._status,
            "restarted": self._restarted, "steps": self._steps, "bars": self._bars,
            "late_batches": self._late,
            "sandbox": "off (strategies run in the runner's process)",
        }  # fmt: skip
        if self.sandbox and engine is not None:
            status["sandbox"] = {
                sid: getattr(strategy, "isolation", None) for sid, strategy in engine.strategies
            }
        if engine is not None and hasattr(engine.broker, "ledger"):
            try:
                ledger = engine.broker.ledger
                working = engine.broker.open_orders()
                last = engine._last_ts
                status.update(
                    cash=ledger.cash,
                    equity=ledger.equity(),
                    pnl=ledger.equity() - self.resolved.run.initial_cash,
                    positions={s: p.quantity for s, p in ledger.positions().items()},
                    working_orders=[
                        {
                            "id": o.client_order_id,
                            "symbol": o.symbol,
                            "side": o.side.value,
                            "quantity": o.quantity,
                            "filled": o.filled_quantity,
                            "type": o.type.value,
                            "strategy": o.strategy_id,
                        }
                        for o in working
                    ],
                    last_bar=None if last is None else pd.Timestamp(last, tz="UTC").isoformat(),
                    data_age_seconds=None
                    if last is None
                    else max(0.0, (self._clock.now() - last) / 1e9),
                    strategies={sid: getattr(s, "state", "active") for sid, s in engine.strategies},
                )
            except (AttributeError, RuntimeError):  # mid-update in the engine's thread
                pass
        if control is not None:
            with contextlib.suppress(RuntimeError):
                status["trading_states"] = dict(control.states)
        write_json(self.session.status_file, status)


# --- helpers -------------------------------------------------------------------------------------
class _LiveMarket:
    """What the engine iterates in a session: the symbols, and chunks as they arrive."""

    def __init__(
        self, symbols: list[str], chunks: Iterator[MarketData], actions: list[Any]
    ) -> None:
        self.symbols = symbols
        self._chunks = chunks
        self.total_bars = 4096  # unknown in advance; the engine's arrays grow
        self.actions: list[Any] = list(actions)

    def chunks(self) -> Iterator[MarketData]:
        return self._chunks


def _market(batches: list[list[Bar]]) -> MarketData:
    """Batches of bars as market data (one frame per symbol)."""
    rows: dict[str, list[Bar]] = {}
    for batch in batches:
        for bar in batch:
            rows.setdefault(bar.symbol, []).append(bar)
    frames = {}
    for symbol, bars in rows.items():
        index = pd.DatetimeIndex(np.array([b.ts for b in bars], dtype="datetime64[ns]"), tz="UTC")
        index.name = "ts"
        data = {c: np.array([getattr(b, c) for b in bars], dtype=np.float64) for c in BAR_COLUMNS}
        frames[symbol] = pd.DataFrame(data, index=index)
    return MarketData(frames)


def _until(history: MarketData, cursor: int) -> MarketData | None:
    """The bars up to and including ``cursor``: a restarted session's warm-up history."""
    frames = {}
    stamp = pd.Timestamp(cursor, tz="UTC")
    for symbol, frame in history.frames.items():
        part = frame.loc[:stamp]
        if len(part):
            frames[symbol] = part
    return MarketData(frames) if frames else None


def _clock_for(source: DataSource) -> Any:
    from tradeloom.live.clock import ReplayClock, WallClock
    from tradeloom.live.replay import ReplaySource

    if isinstance(source, ReplaySource):
        return ReplayClock(speed=source.params.speed)
    return WallClock()


def _apply_action(ledger: Any, action: Any) -> None:
    """A split or cash dividend on the restored ledger, as the engine applied it then."""
    if action.kind == "split":
        ledger.split(action.ex_ts, action.symbol, action.ratio)
    else:
        amount = ledger.quantity(action.symbol) * action.amount * ledger.rate(action.symbol)
        if amount:
            ledger.cash_flow(action.ex_ts, amount, "dividend", action.symbol)


def _max_fill_seq(fills: list[Any]) -> int:
    best = 0
    for fill in fills:
        digits = fill.fill_id[1:]
        if fill.fill_id.startswith("F") and digits.isdigit():
            best = max(best, int(digits))
    return best


def _reconcile(state: Any, broker: SimulatedBroker) -> list[str]:
    """The journal against the rebuilt broker: every fill's order known, each order's filled
    quantity the sum of its fills; positions the sum of the fills (by construction here: a
    real broker's reports are compared the same way)."""
    problems = []
    filled: dict[str, float] = {}
    for fill in state.fills:
        filled[fill.client_order_id] = filled.get(fill.client_order_id, 0.0) + fill.quantity
        if fill.client_order_id not in broker.orders:
            problems.append(
                f"fill {fill.fill_id} belongs to an unknown order {fill.client_order_id}"
            )
    for coid, qty in filled.items():
        order = broker.orders.get(coid)
        if order is not None and abs(order.filled_quantity - qty) > 1e-9 * max(1.0, qty):
            problems.append(
                f"order {coid}: journaled filled quantity {order.filled_quantity:g} but its "
                f"fills add up to {qty:g}"
            )
    for coid, order in broker.orders.items():
        if order.filled_quantity > 0 and coid not in filled:
            problems.append(f"order {coid} says {order.filled_quantity:g} filled but has no fills")
    return problems


__all__ = ["PaperRunner", "SessionSummary", "TradeloomError"]
