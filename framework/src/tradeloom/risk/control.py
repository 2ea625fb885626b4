"""Trading states, the kill switch, and the control that owns the risk gate.

A :class:`RiskControl` belongs to the runner, never to a strategy. Every order, replace and
cancel a strategy sends passes :meth:`RiskControl.check` (or :meth:`check_cancel`) before it can
reach a broker:

1. the **trading state** of the order's scopes — the whole account (``global``), the strategy
   (``strategy:ID``) and the instrument (``instrument:SYMBOL``); the strictest wins:

   * ``ACTIVE``: the rules decide;
   * ``REDUCING``: only a risk-reducing order passes (one against the position whose units, with
     the working orders on its side, do not take it beyond zero);
   * ``HALTED``: nothing from a strategy passes;

2. the **rule chain**, in configured order; any reject wins.

Monitors (:class:`~tradeloom.risk.base.RiskMonitor`) watch fills, equity and bars and act through
the control: halt a scope (optionally cancelling its working orders and flattening it) or send a
protective exit. Exits and flattening orders come from the runner (``origin = "risk"``): they are
checked to be risk-reducing and skip the rule chain, whose rules exist to stop risk being added
(a stale-data guard must never block a stop-loss).

Every reject and state change is a :class:`RiskEvent` in :attr:`RiskControl.events`; state
changes, kills and operator actions are also logged (loguru, ``tradeloom.risk``). A control
given a ``state_file`` writes every state change to it (atomically) and reads it back when
built, so a HALTED account or strategy stays HALTED across restarts until an operator resumes it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

from loguru import logger

from tradeloom.errors import ConfigError, TradeloomError
from tradeloom.model import Fill, Order, Side
from tradeloom.risk.base import Reject, RiskGate, RiskMonitor, RiskRule, RiskView

log = logger.bind(component="tradeloom.risk")

_NEVER = 2**63 - 1

RISK_ID = "risk"
"""The strategy id of the runner's own orders (protective exits, flattening)."""


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}

Level = Literal["global", "strategy", "instrument"]


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a trading state applies: ``global``, ``strategy:ID`` or ``instrument:SYMBOL``."""

    level: Level
    key: str = ""

    def __post_init__(self) -> None:
        if self.level not in ("global", "strategy", "instrument"):
            raise ConfigError(
                f"unknown risk scope level {self.level!r}; use global, strategy or instrument",
                path="scope",
            )
        if (self.level == "global") != (self.key == ""):
            raise ConfigError(
                f"risk scope {self.level!r} {'takes no' if self.level == 'global' else 'needs a'} "
                "key: write 'global', 'strategy:ID' or 'instrument:SYMBOL'",
                path="scope",
            )

    def __str__(self) -> str:
        return self.level if self.level == "global" else f"{self.level}:{self.key}"

    @classmethod
    def parse(cls, text: str | Scope) -> Scope:
        if isinstance(text, Scope):
            return text
        level, _, key = str(text).partition(":")
        return cls(level, key)  # type: ignore[arg-type]

    def covers(self, order: Order) -> bool:
        if self.level == "global":
            return True
        if self.level == "strategy":
            return order.strategy_id == self.key
        return order.symbol == self.key


GLOBAL = Scope("global")


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """One thing the risk control did: a reject, a state change, a kill, an exit or an alert."""

    ts: int
    kind: Literal["reject", "state", "kill", "exit", "alert", "operator"]
    scope: str
    reason: str
    rule: str = ""
    limit: float | None = None
    observed: float | None = None
    client_order_id: str = ""
    state: str = ""
    """For ``state`` and ``kill`` events: the new state."""
    by: str = "rule"
    """Who acted: ``rule`` (a rule or monitor), ``operator``, or ``runner``."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class KillReport:
    """What the kill switch did: orders canceled, and those whose cancel failed (still working
    at the broker as far as the runner knows; listed for the operator)."""

    canceled: tuple[str, ...]
    residual: tuple[tuple[str, str], ...]
    """(client order id, error) of each cancel that failed."""
    flattened: tuple[str, ...] = ()


class Actions(Protocol):
    """What the runner lets the risk control do (implemented by each engine)."""

    now: int

    def risk_view(self) -> RiskView: ...

    def working_orders(self) -> Sequence[Order]: ...

    def cancel_order(self, client_order_id: str, reason: str) -> None: ...

    def send_exit(self, symbol: str, side: Side, quantity: float, reason: str) -> Order | None: ...

    def bars_of(self, symbol: str, n: int) -> Any: ...

    def position_of(self, symbol: str) -> tuple[float, float]: ...


@dataclass(frozen=True, slots=True)
class _Probe:
    """What :meth:`RiskControl.state_of` reads of an order."""

    strategy_id: str
    symbol: str


@dataclass(slots=True)
class _StateRecord:
    state: TradingState
    since: int
    reason: str
    by: str


@dataclass
class RiskControl:
    """The runner's risk gate: trading states, the rule chain, monitors and the kill switch."""

    rules: Sequence[RiskRule] = ()
    state_file: Path | None = None
    events: list[RiskEvent] = field(default_factory=list)
    on_alert: Callable[[RiskEvent], None] | None = None
    """Called for every alert (a halt, a kill, sustained throttling); the runner wires its
    monitoring here. Alerts are also logged at WARNING."""

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        for rule in rules:  # rejects and on_reject are matched by name: every rule has one
            if not rule.name:
                rule.name = type(rule).__name__
        names = [r.name for r in rules]
        self.rules = rules
        self._names = names
        # Only rules that check orders are in the chain; monitors only watch.
        self.gate = RiskGate([r for r in rules if type(r).check is not RiskMonitor.check])
        self._cancel_rules = tuple(
            r for r in rules if type(r).check_cancel is not RiskRule.check_cancel
        )
        self._fill_watchers = tuple(r for r in rules if type(r).on_fill is not RiskRule.on_fill)
        self._equity_watchers = tuple(
            r for r in rules if type(r).on_equity is not RiskRule.on_equity
        )
        self._bar_watchers = tuple(r for r in rules if type(r).on_bar is not RiskRule.on_bar)
        self._states: dict[Scope, _StateRecord] = {}
        self._actions: Actions | None = None
        self.equity_band: tuple[float, float, int] = (math.inf, -math.inf, 0)
        """``(low, high, until)``: equity within it before ``until`` needs no call to
        :meth:`on_equity` (empty until the first call, and after any state change)."""
        self.previous_equity: float | None = None
        self.kill_pending: tuple[str, bool] | None = None
        """A kill requested from another thread (:meth:`request_kill`), ``(reason, flatten)``:
        the runner completes it (cancels, flattening) at its next step."""
        self._scheduled: list[tuple[int, Callable[[RiskControl], Any]]] = []
        if self.state_file is not None:
            self.state_file = Path(self.state_file)
            self._load()

    # --- wiring ---------------------------------------------------------------------------------
    def attach(self, actions: Actions) -> None:
        """Called by the engine that runs the pipeline: how the control acts on it."""
        self._actions = actions

    @property
    def watches_fills(self) -> bool:
        return bool(self._fill_watchers)

    @property
    def checks_cancels(self) -> bool:
        return bool(self._cancel_rules)

    @property
    def watches_equity(self) -> bool:
        return bool(self._equity_watchers)

    @property
    def watches_bars(self) -> bool:
        return bool(self._bar_watchers) or bool(self._scheduled)

    @property
    def active(self) -> bool:
        """Anything to check at all: rules, a state other than ACTIVE somewhere."""
        return bool(len(self.gate) or self._states)

    def schedule(self, ts: int, action: Callable[[RiskControl], Any]) -> None:
        """Run ``action(control)`` at the first bar at or after ``ts`` (ns) — an operator's kill
        or resume replayed in a backtest."""
        self._scheduled.append((int(ts), action))
        self._scheduled.sort(key=lambda item: item[0])

    # --- states ---------------------------------------------------------------------------------
    @property
    def states(self) -> Mapping[str, TradingState]:
        """Every scope not ACTIVE and its state (read-only)."""
        return MappingProxyType({str(s): r.state for s, r in self._states.items()})

    def state(self, scope: Scope | str = GLOBAL) -> TradingState:
        record = self._states.get(Scope.parse(scope))
        return TradingState.ACTIVE if record is None else record.state

    def state_of(self, order: Order) -> tuple[TradingState, Scope | None]:
        """The strictest state over the order's scopes, and the scope it comes from."""
        states = self._states
        if not states:
            return TradingState.ACTIVE, None
        worst, where = TradingState.ACTIVE, None
        for scope in (
            GLOBAL,
            Scope("strategy", order.strategy_id) if order.strategy_id else None,
            Scope("instrument", order.symbol),
        ):
            record = states.get(scope) if scope is not None else None
            if record is not None and _RANK[record.state] > _RANK[worst]:
                worst, where = record.state, scope
        return worst, where

    def set_state(
        self,
        scope: Scope | str,
        state: TradingState | str,
        reason: str,
        *,
        by: str = "operator",
        rule: str = "",
        limit: float | None = None,
        observed: float | None = None,
    ) -> None:
        """Move ``scope`` to ``state``. Only an operator (``by="operator"``) lifts a halt; a
        reducing-only state can also be lifted by whoever set it (the runner marks a stale
        feed's instrument reducing-only and lifts it when bars resume)."""
        scope, state = Scope.parse(scope), TradingState(state)
        current = self._states.get(scope)
        if current is not None and current.state is state:
            return
        if (
            by != "operator"
            and current is not None
            and _RANK[state] < _RANK[current.state]
            and (current.state is TradingState.HALTED or current.by != by)
        ):
            raise TradeloomError(
                f"{by} tried to move {scope} from {current.state.value} to {state.value}: only an "
                "operator can lift a halt, or a reducing-only state someone else set"
            )
        ts = self._now()
        self.equity_band = (math.inf, -math.inf, 0)  # monitors look again (a resume resets them)
        if state is TradingState.ACTIVE:
            self._states.pop(scope, None)
        else:
            self._states[scope] = _StateRecord(state, ts, reason, by)
        event = RiskEvent(
            ts, "state", str(scope), reason, rule, limit, observed, state=state.value, by=by
        )
        self.events.append(event)
        level = "WARNING" if state is not TradingState.ACTIVE else "INFO"
        log.log(level, "risk state {scope} -> {state} by {by}: {reason}",
                scope=str(scope), state=state.value, by=by, reason=reason)  # fmt: skip
        self._save()
        if state is TradingState.HALTED:
            self._alert(event)

    def halt(
        self,
        scope: Scope | str,
        reason: str,
        *,
        rule: str = "",
        by: str = "rule",
        cancel: bool = True,
        flatten: bool = False,
        limit: float | None = None,
        observed: float | None = None,
    ) -> None:
        """Halt ``scope``: refuse its new orders; with ``cancel`` cancel its working orders;
        with ``flatten`` close its positions with market orders from the runner."""
        scope = Scope.parse(scope)
        if self.state(scope) is TradingState.HALTED:
            return
        self.set_state(
            scope, TradingState.HALTED, reason, by=by, rule=rule, limit=limit, observed=observed
        )
        if cancel:
            self._cancel_scope(scope, f"{scope} halted: {reason}")
        if flatten:
            self._flatten(scope, f"{scope} halted: {reason}")

    def resume(self, scope: Scope | str = GLOBAL, reason: str = "operator resume") -> None:
        """The operator's action that lifts a halt (or a reducing-only state)."""
        self.set_state(scope, TradingState.ACTIVE, reason, by="operator")

    def kill(self, reason: str = "kill switch", *, flatten: bool = False) -> KillReport:
        """The kill switch: HALTED at global scope (persisted), every working order canceled,
        nothing new accepted until :meth:`resume`. Cancels that fail are listed, not raised."""
        ts = self._now()
        current = self._states.get(GLOBAL)
        self._states[GLOBAL] = _StateRecord(TradingState.HALTED, ts, reason, "operator")
        self._save()  # first: a crash from here on restarts HALTED
        event = RiskEvent(
            ts, "kill", "global", reason, state=TradingState.HALTED.value, by="operator"
        )
        self.events.append(event)
        if current is None or current.state is not TradingState.HALTED:
            log.warning("kill switch: {reason}", reason=reason)
        canceled, residual = self._cancel_scope(GLOBAL, f"kill switch: {reason}", exits=True)
        flattened = self._flatten(GLOBAL, f"kill switch: {reason}") if flatten else ()
        if residual:
            self.events.append(
                RiskEvent(
                    ts, "alert", "global",
                    f"kill switch: {len(residual)} cancel(s) failed; still working: "
                    + ", ".join(coid for coid, _ in residual),
                    by="runner",
                )
            )  # fmt: skip
        self._alert(event)
        return KillReport(tuple(canceled), tuple(residual), tuple(flattened))

    def request_kill(
        self, reason: str = "kill switch", *, flatten: bool = False, ts: int | None = None
    ) -> None:
        """The kill switch's priority path, safe from another thread: HALTED at global scope
        now (persisted; every order checked from here on is refused), the cancels and any
        flattening left to the runner's next step (:attr:`kill_pending`)."""
        when = self._now() if ts is None else ts
        self._states[GLOBAL] = _StateRecord(TradingState.HALTED, when, reason, "operator")
        self._save()
        self.kill_pending = (reason, flatten)

    # --- checks ---------------------------------------------------------------------------------
    def check(
        self, order: Order, view: RiskView, *, origin: Literal["strategy", "risk"] = "strategy"
    ) -> Reject | None:
        """The verdict on an order or a replace (the amended order): the trading state of its
        scopes, then the rule chain. A reject is recorded as an event."""
        if origin == "risk":  # the runner's exits: risk-reducing, whatever the state
            if not view.reduces(order):
                return self._rejected(
                    order, Reject("risk-control", "a runner exit must reduce a position")
                )
            return None
        if self._states:
            state, where = self.state_of(order)
            if state is TradingState.HALTED:
                record = self._states[where]  # type: ignore[index]
                return self._rejected(
                    order, Reject("trading-state", f"{where} is halted ({record.reason})")
                )
            if state is TradingState.REDUCING and not view.reduces(order):
                return self._rejected(
                    order,
                    Reject("trading-state", f"{where} is reducing-only and the order adds risk"),
                )
        verdict = self.gate.check(order, view)
        if verdict is not None:
            return self._rejected(order, verdict)
        return None

    def room(self, strategy_id: str, symbol: str, side: Side, view: RiskView) -> float:
        """The largest market order in ``symbol`` on ``side`` the gate's quantity limits
        (order quantity and notional, position, restricted list) and the trading states would
        let ``strategy_id`` send now; ``inf`` when nothing limits it. Exposure, leverage, VaR
        and the message rules can still refuse an order within it."""
        probe = _Probe(strategy_id, symbol)
        state, _ = self.state_of(probe)  # type: ignore[arg-type]
        if state is TradingState.HALTED:
            return 0.0
        room = view.reducing_room(symbol, side) if state is TradingState.REDUCING else math.inf
        for rule in self.gate.rules:
            limit = rule.room(symbol, side, view)
            if limit is not None:
                room = min(room, limit)
        return max(0.0, room)

    def check_cancel(self, order: Order, view: RiskView) -> Reject | None:
        """The verdict on a strategy's cancel: never refused for a trading state (a cancel only
        removes risk); rules that count messages (the throttle) may refuse it."""
        for rule in self._cancel_rules:
            verdict = rule.check_cancel(order, view)
            if verdict is not None:
                return self._rejected(order, verdict)
        return None

    def _rejected(self, order: Order, reject: Reject) -> Reject:
        self.events.append(
            RiskEvent(
                self._now(), "reject", f"strategy:{order.strategy_id}", reject.reason,
                reject.rule, reject.limit, reject.observed, order.client_order_id,
            )
        )  # fmt: skip
        for rule in self.rules:
            if rule.name == reject.rule:
                rule.on_reject(order, reject, self)
                break
        return reject

    # --- monitors -------------------------------------------------------------------------------
    def on_fill(self, fill: Fill) -> None:
        for rule in self._fill_watchers:
            rule.on_fill(fill, self)

    def on_equity(self, ts: int, equity: float, previous: float | None = None) -> None:
        """Equity after the bars at ``ts`` (``previous``: at the bar before). Sets
        :attr:`equity_band`: the engine marks equity every bar but calls this only when it
        leaves the band the watchers returned."""
        self.previous_equity = previous
        low, high, until = -math.inf, math.inf, _NEVER
        for rule in self._equity_watchers:
            band = rule.on_equity(ts, equity, self)
            if band is None:
                low, high, until = math.inf, -math.inf, 0  # call again at the next bar
            else:
                low, high, until = max(low, band[0]), min(high, band[1]), min(until, band[2])
        self.equity_band = (low, high, until)

    def on_bars(self, bars: Iterable[Any]) -> None:
        """Called once per timestamp after the strategies, with that timestamp's bars."""
        if self._scheduled:
            now = self._now()
            while self._scheduled and self._scheduled[0][0] <= now:
                _, action = self._scheduled.pop(0)
                action(self)
        for bar in bars:
            for rule in self._bar_watchers:
                rule.on_bar(bar, self)

    def exit(self, symbol: str, quantity: float, side: Side, reason: str, rule: str) -> None:
        """Send a protective exit: a market order from the runner for ``quantity`` (risk-
        reducing). The strategies' working orders in ``symbol`` on the exit's side are canceled
        first (they would sell what the exit sells); nothing is sent while an earlier runner
        exit in the symbol is still working."""
        actions = self._require_actions()
        working = [o for o in actions.working_orders() if o.symbol == symbol]
        if any(o.strategy_id == RISK_ID for o in working):
            return
        for o in working:
            if o.side is side:
                actions.cancel_order(o.client_order_id, f"superseded by the {rule} exit")
        order = actions.send_exit(symbol, side, quantity, f"{rule}: {reason}")
        self.events.append(
            RiskEvent(
                self._now(), "exit", f"instrument:{symbol}", reason, rule,
                client_order_id=order.client_order_id if order is not None else "",
            )
        )  # fmt: skip

    def position(self, symbol: str) -> tuple[float, float]:
        """The account's ``(quantity, average price)`` in ``symbol``."""
        return self._require_actions().position_of(symbol)

    def alert(self, scope: Scope | str, reason: str, *, rule: str = "") -> None:
        event = RiskEvent(self._now(), "alert", str(Scope.parse(scope)), reason, rule)
        self.events.append(event)
        self._alert(event)

    def view(self) -> RiskView:
        return self._require_actions().risk_view()

    def history(self, symbol: str, n: int) -> Any:
        """The last ``n`` bars of ``symbol`` (rows open, high, low, close, volume)."""
        return self._require_actions().bars_of(symbol, n)

    def update_rule(self, name: str, reason: str, **changes: Any) -> RiskRule:
        """An operator's change to a rule's limits: validated like the config, logged, recorded.
        Strategies have no path to this (they never hold the control)."""
        for i, rule in enumerate(self.rules):
            if rule.name == name:
                params = type(rule).Params(**{**rule.params.model_dump(), **changes})
                rule.params = params
                self.events.append(
                    RiskEvent(self._now(), "operator", "global",
                              f"{name} limits changed: {changes} ({reason})", name, by="operator")
                )  # fmt: skip
                log.warning("risk rule {name} changed by operator: {changes} ({reason})",
                            name=name, changes=changes, reason=reason)  # fmt: skip
                return self.rules[i]
        raise ConfigError(f"no risk rule named {name!r}; rules: {', '.join(self._names)}")

    @property
    def now(self) -> int:
        """The run's clock (ns since epoch); 0 before the control is attached."""
        return self._now()

    # --- internals ------------------------------------------------------------------------------
    def _now(self) -> int:
        return self._actions.now if self._actions is not None else 0

    def _require_actions(self) -> Actions:
        if self._actions is None:
            raise TradeloomError("the risk control is not attached to a running engine")
        return self._actions

    def _alert(self, event: RiskEvent) -> None:
        log.warning("risk alert [{scope}] {reason}", scope=event.scope, reason=event.reason)
        if self.on_alert is not None:
            self.on_alert(event)

    def _cancel_scope(
        self, scope: Scope, reason: str, *, exits: bool = False
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Cancel the working orders in ``scope``; the runner's own exits only with ``exits``
        (the kill switch cancels everything; a halt leaves protective exits working)."""
        if self._actions is None:
            return [], []
        canceled, residual = [], []
        for order in list(self._actions.working_orders()):
            if not scope.covers(order) or (order.strategy_id == RISK_ID and not exits):
                continue
            try:
                self._actions.cancel_order(order.client_order_id, reason)
            except Exception as exc:  # a broker failing cancels must not stop the kill
                residual.append((order.client_order_id, f"{type(exc).__name__}: {exc}"))
            else:
                canceled.append(order.client_order_id)
        return canceled, residual

    def _flatten(self, scope: Scope, reason: str) -> tuple[str, ...]:
        """Close the positions in ``scope`` with market orders from the runner. Working orders
        on the closing side (the runner's earlier exits, and the scope's own) are canceled
        first: they would sell what the flattening sells."""
        if self._actions is None:
            return ()
        actions = self._actions
        view = actions.risk_view()
        sent = []
        for symbol, position in view.positions.items():
            if scope.level == "instrument" and symbol != scope.key:
                continue
            qty = position.quantity
            if scope.level == "strategy":
                qty = view.strategy_position(scope.key, symbol)
            if abs(qty) <= 1e-12:
                continue
            side = Side.SELL if qty > 0 else Side.BUY
            for o in actions.working_orders():
                if (
                    o.symbol == symbol
                    and o.side is side
                    and (o.strategy_id == RISK_ID or scope.covers(o))
                ):
                    actions.cancel_order(o.client_order_id, f"superseded: {reason}")
            order = actions.send_exit(symbol, side, abs(qty), reason)
            if order is None:
                self.alert(scope, f"could not flatten {symbol}: the exit was refused")
                continue
            sent.append(order.client_order_id)
            self.events.append(
                RiskEvent(self._now(), "exit", str(scope), reason, "flatten",
                          client_order_id=order.client_order_id, by="runner")
            )  # fmt: skip
        return tuple(sent)

    def _save(self) -> None:
        path = self.state_file
        if path is None:
            return
        data = {
            str(s): {"state": r.state.value, "since": r.since, "reason": r.reason, "by": r.by}
            for s, r in self._states.items()
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": 1, "states": data}, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _load(self) -> None:
        path = self.state_file
        assert path is not None
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text())
            states = data["states"]
            for key, rec in states.items():
                self._states[Scope.parse(key)] = _StateRecord(
                    TradingState(rec["state"]), int(rec["since"]), str(rec["reason"]),
                    str(rec["by"]),
                )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, TradeloomError) as exc:
            raise ConfigError(
                f"risk state file {path} is unreadable ({exc}); it holds the trading states "
                "(a halt must survive a restart): repair it, or delete it only if an operator "
                "has confirmed every scope may trade",
                path="risk_state",
            ) from exc
        for scope, rec in self._states.items():
            log.warning("risk state {scope} restored as {state} ({reason})",
                        scope=str(scope), state=rec.state.value, reason=rec.reason)  # fmt: skip
