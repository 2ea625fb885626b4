"""The journal store: runs, orders, fills, positions, equity, risk events and the audit log in
one SQL database — SQLite by default (a file, WAL mode, zero set-up), PostgreSQL in production.

* The schema belongs to the migrations (``tradeloom db upgrade``). A new, empty database is
  brought to the latest schema on first use; a database at an older revision, or at one this
  version of tradeloom does not know (written by a newer one), is refused with the command to
  run.
* Backtests write everything in one transaction at the end (:meth:`Store.record_backtest`), so
  the journal costs little and a crash leaves no half-run behind. Paper and live sessions write
  ahead (:meth:`Store.begin_run`, :meth:`journal_order` before the order is sent,
  :meth:`journal_update` and :meth:`journal_fill` as they arrive, each committed at once).
* Several processes can write to one store at once. Writes that append to the audit chain take
  the database's write lock first (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level
  advisory lock), so the chain never forks.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from sqlalchemy import (
    Connection,
    Engine,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError

from tradeloom.errors import TradeloomError
from tradeloom.store import audit
from tradeloom.store.models import (
    AuditRow,
    DeploymentRow,
    EquityRow,
    FillRow,
    OrderRow,
    PositionRow,
    RiskEventRow,
    RunRow,
)

if TYPE_CHECKING:
    from tradeloom.engine.result import BacktestResult
    from tradeloom.model import Fill, Order

log = logger.bind(component="tradeloom.store")

DEFAULT_URL = "sqlite:///tradeloom.db"
"""The store when neither the deployment (``[store] url``), the command line (``--store``) nor
the environment (``TRADELOOM_STORE``) names one: ``tradeloom.db`` in the working directory,
next to the output folders."""
EQUITY_SNAPSHOTS = 1_000
"""At most this many equity snapshots per backtest (evenly spaced, the last bar included)."""
_PG_SCHEMA_LOCK = 0x7472_6C6D_0002
"""Advisory lock serialising schema migrations."""
_PG_AUDIT_LOCK = 0x7472_6C6D  # "trlm": the advisory lock that serialises audit appends

_RUN_TABLES = (OrderRow, FillRow, PositionRow, EquityRow, RiskEventRow)


class StoreError(TradeloomError):
    """The store cannot be used as it is (bad URL, unreachable, wrong schema). Exit code 2."""

    exit_code = 2


def default_url() -> str:
    return os.environ.get("TRADELOOM_STORE") or DEFAULT_URL


def display_url(url: str) -> str:
    """``url`` with any password masked, for messages and logs (also when it does not parse:
    anything between ``user:`` and ``@`` is hidden)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _mask_password(url)


def _mask_password(url: str) -> str:
    import re

    return re.sub(r"([/@][^:/@]*:)[^@/]*@", r"\1***@", url)


def now_iso() -> str:
    """The wall-clock time in UTC, ISO 8601 with microseconds (when records were written)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class RunSummary:
    id: str
    mode: str
    status: str
    title: str
    started_at: str
    finished_at: str | None
    config_hash: str
    total_return: float | None
    orders: int
    fills: int


@dataclass(frozen=True)
class SessionState:
    """:meth:`Store.session_state`."""

    run_id: str
    status: str
    cursor: int | None
    orders: dict[str, tuple[Any, int]]
    """client order id -> (its last journaled state as an Order, that version)."""
    fills: list[Any]


@dataclass(frozen=True)
class RunComparison:
    """:meth:`Store.compare`: metrics ``(name, a, b)`` and what differs between two runs."""

    a: str
    b: str
    metrics: list[tuple[str, Any, Any]]
    code_differs: bool
    config_differs: bool
    data_differs: bool
    plugins_differ: bool
    framework_differs: bool
    config_changes: list[tuple[str, Any, Any]]
    """``(dotted path, value in a, value in b)`` for each config value that differs."""
    plugin_changes: list[str]
    """Plugin ``"distribution version"`` entries in one run but not the other."""
    code_changes: list[str]
    """Strategy classes whose source hash differs (or that only one run has)."""

    def summary(self) -> str:
        """One line: what differs, e.g. ``config differs (strategies.0.params.fast: 10 -> 20);
        code, data and plugins are the same``."""
        parts = {
            "code": self.code_differs, "config": self.config_differs,
            "data": self.data_differs, "plugins": self.plugins_differ,
        }  # fmt: skip
        differ = [k for k, v in parts.items() if v]
        same = [k for k, v in parts.items() if not v]
        text = []
        if differ:
            detail = ""
            if self.config_differs and self.config_changes:
                shown = "; ".join(f"{p}: {va!r} -> {vb!r}" for p, va, vb in self.config_changes[:5])
                more = len(self.config_changes) - 5
                detail = f" ({shown}{f'; {more} more' if more > 0 else ''})"
            text.append(f"{_join(differ)} {'differs' if len(differ) == 1 else 'differ'}{detail}")
        if same:
            text.append(f"{_join(same)} {'is' if len(same) == 1 else 'are'} the same")
        return "; ".join(text)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _diff(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Leaf values that differ between two JSON-like trees, as dotted paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append((sub, a.get(key), b.get(key)))
            else:
                out.extend(_diff(a[key], b[key], sub))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(_diff(x, y, f"{path}.{i}" if path else str(i)))
        return out
    return [] if a == b else [(path, a, b)]


class Store:
    """A journal database. ``Store(url)`` connects, checks the schema (creating it in an empty
    database) and is ready; ``Store(url, check=False)`` skips the check (``tradeloom db``)."""

    def __init__(self, url: str | None = None, *, check: bool = True) -> None:
        self.url = url or default_url()
        self.engine = _engine(self.url)
        self.dialect = self.engine.dialect.name
        if check:
            self.ensure_schema()

    def __repr__(self) -> str:
        return f"Store({display_url(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # --- schema ---------------------------------------------------------------------------------
    def current(self) -> str | None:
        """The database's schema revision (``None``: no schema yet)."""
        from tradeloom.store.migrate import current_revision

        with self._connect() as conn:
            return current_revision(conn)

    def head(self) -> str:
        from tradeloom.store.migrate import head_revision

        return head_revision()

    def upgrade(self, revision: str = "head") -> str | None:
        """Migrate the schema to ``revision`` (the latest by default); returns the new one."""
        from alembic.util import CommandError

        from tradeloom.store.migrate import upgrade

        try:
            with self._begin() as conn:
                if self.dialect == "postgresql":  # two processes creating one schema: one waits
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_SCHEMA_LOCK})")
                upgrade(conn, revision)
        except CommandError as exc:
            raise StoreError(f"store {display_url(self.url)}: cannot upgrade: {exc}") from None
        return self.current()

    def ensure_schema(self) -> None:
        """Create the schema in an empty database; refuse one at another revision."""
        from tradeloom.store.migrate import known_revisions, table_names

        current, head = self.current(), self.head()
        if current == head:
            return
        shown = display_url(self.url)
        if current is None:
            with self._connect() as conn:
                ours = set(table_names(conn)) & {t.__tablename__ for t in (RunRow, AuditRow)}
            if ours:
                raise StoreError(
                    f"store {shown} has journal tables but no schema revision; it was not made "
                    "by `tradeloom db upgrade`: point store.url at another database"
                )
            log.info("creating the journal schema in {url}", url=shown)
            self.upgrade()
            return
        if current in known_revisions():
            raise StoreError(
                f"store {shown} is at schema revision {current}, this tradeloom needs {head}: "
                f"run `tradeloom db upgrade --store {shown}`"
            )
        raise StoreError(
            f"store {shown} is at schema revision {current}, which this tradeloom does not know "
            f"(its latest is {head}): it was written by a newer tradeloom; upgrade tradeloom, "
            "or point store.url at another database"
        )

    # --- backtests: one transaction at the end ---------------------------------------------------
    def record_backtest(
        self,
        result: BacktestResult,
        *,
        order_log: Sequence[Order] | None = None,
        fill_log: Sequence[Fill] | None = None,
        positions: Sequence[tuple[str, float, float]] = (),
        out_dir: str | Path | None = None,
        started_at: str | None = None,
    ) -> str:
        """Write a finished backtest: its run and deployment, every order state
        (``order_log``: each state in the order it happened; else each order's final state),
        fills, final ``positions`` ``(symbol, quantity, avg_price)``, equity snapshots, risk
        events, and audit records (run started with its provenance, each halt, kill and
        operator action, run finished with digests of the orders and fills written)."""
        run_id = result.run_id
        prov = result.provenance
        config = result.config
        config_hash = str(prov.get("config_hash") or audit.chain_hash("", audit.canonical(config)))
        started = started_at or now_iso()
        equity = result.equity
        last_ts = int(equity.index[-1].value) if len(equity) else 0
        orders = _order_rows(run_id, order_log if order_log is not None else None, result)
        fills = (
            [_fill_row(run_id, f) for f in fill_log]
            if fill_log is not None
            else _fill_rows(run_id, result)
        )
        risk = _risk_rows(run_id, result)
        metrics = json.loads(result.metrics.to_json())
        run = {
            "id": run_id, "mode": "backtest", "status": "finished", "title": result.title,
            "started_at": started, "finished_at": now_iso(), "config_hash": config_hash,
            "data_fingerprint": str(prov.get("data_fingerprint", "")),
            "framework_version": str(prov.get("framework_version", "")),
            "plugins": list(prov.get("plugins", [])), "code_hash": str(prov.get("code_hash", "")),
            "code": dict(prov.get("code", {})), "git_commit": prov.get("git_commit"),
            "metrics": audit._plain(metrics), "error": None,
            "out_dir": None if out_dir is None else str(out_dir),
        }  # fmt: skip
        with self._begin() as conn:
            self._deployment(conn, config_hash, config)
            conn.execute(insert(RunRow.__table__), [run])
            for table, rows in (
                (OrderRow, orders),
                (FillRow, fills),
                (RiskEventRow, risk),
                (EquityRow, _equity_rows(run_id, result)),
                (PositionRow, [
                    {"run_id": run_id, "ts": last_ts, "symbol": s, "quantity": q, "avg_price": p}
                    for s, q, p in positions
                ]),
            ):  # fmt: skip
                _bulk(conn, table, rows)
            self._audit(conn, "run.started", run_id, _provenance_payload(run, prov))
            for row in risk:  # halts, kills and every operator action
                if (
                    row["by"] == "operator"
                    or row["kind"] == "kill"
                    or (row["kind"] == "state" and row["state"] == "halted")
                ):
                    self._audit(conn, f"risk.{row['kind']}", run_id, row)
            self._audit(conn, "run.finished", run_id, {
                "status": "finished", "orders": len(orders), "fills": len(fills),
                "risk_events": len(risk),
                "orders_sha256": _digest(orders), "fills_sha256": _digest(fills),
                "metrics": run["metrics"],
            })  # fmt: skip
        return run_id

    # --- paper and live: write-ahead -----------------------------------------------------------
    def begin_run(
        self,
        run_id: str,
        mode: str,
        config: dict[str, Any],
        provenance: dict[str, Any],
        title: str = "",
        *,
        started_at: str | None = None,
    ) -> None:
        """Record a session as running, with its deployment and provenance (audited)."""
        config_hash = str(
            provenance.get("config_hash") or audit.chain_hash("", audit.canonical(config))
        )
        run = {
            "id": run_id, "mode": mode, "status": "running", "title": title,
            "started_at": started_at or now_iso(), "finished_at": None, "config_hash": config_hash,
            "data_fingerprint": str(provenance.get("data_fingerprint", "")),
            "framework_version": str(provenance.get("framework_version", "")),
            "plugins": list(provenance.get("plugins", [])),
            "code_hash": str(provenance.get("code_hash", "")),
            "code": dict(provenance.get("code", {})), "git_commit": provenance.get("git_commit"),
            "metrics": None, "error": None, "out_dir": None,
        }  # fmt: skip
        with self._begin() as conn:
            self._deployment(conn, config_hash, config)
            conn.execute(insert(RunRow.__table__), [run])
            self._audit(conn, "run.started", run_id, _provenance_payload(run, provenance))

    def record_failure(
        self,
        run_id: str,
        mode: str,
        config: dict[str, Any],
        provenance: dict[str, Any],
        error: str,
        *,
        title: str = "",
        started_at: str | None = None,
    ) -> None:
        """A run that failed before it could be recorded: its row (status ``failed``, the
        error) and its audit records."""
        self.begin_run(run_id, mode, config, provenance, title, started_at=started_at)
        self.finish_run(run_id, "failed", error=error)

    def journal_order(self, run_id: str, order: Order) -> None:
        """Write-ahead: the order as it is about to be sent (version 0), committed before the
        caller sends it; audited as an order submission."""
        row = _order_row(run_id, order, 0)
        with self._begin() as conn:
            conn.execute(insert(OrderRow.__table__), [row])
            self._audit(conn, "order.submitted", run_id, row)

    def journal_update(self, run_id: str, order: Order) -> int:
        """An order's new state, as the next version; returns the version written."""
        with self._begin() as conn:
            last = conn.execute(
                select(func.max(OrderRow.version)).where(
                    OrderRow.run_id == run_id, OrderRow.client_order_id == order.client_order_id
                )
            ).scalar()
            version = 0 if last is None else int(last) + 1
            conn.execute(insert(OrderRow.__table__), [_order_row(run_id, order, version)])
        return version

    def journal_fill(self, run_id: str, fill: Fill) -> bool:
        """An execution; ``False`` when its fill id was already journaled (a re-delivery)."""
        row = _fill_row(run_id, fill)
        with self._begin() as conn:
            stmt = _insert_ignore(self.dialect, FillRow, ["run_id", "fill_id"]).values(row)
            return bool(conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount)

    def journal_step(
        self,
        run_id: str,
        orders: Sequence[tuple[Order, int]],
        fills: Sequence[Fill],
        cursor: int,
    ) -> int:
        """A session's progress, in one transaction: order states ``(order, version)``, fills
        (a fill id already journaled is skipped) and the new ``cursor`` — so a crash leaves
        either all of a step or none of it. Returns the fills written."""
        written = 0
        with self._begin() as conn:
            _bulk(conn, OrderRow, [_order_row(run_id, o, v) for o, v in orders])
            for fill in fills:
                stmt = _insert_ignore(self.dialect, FillRow, ["run_id", "fill_id"]).values(
                    _fill_row(run_id, fill)
                )
                written += conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount
            conn.execute(
                RunRow.__table__.update()
                .where(RunRow.__table__.c.id == run_id)
                .values(cursor=cursor)
            )
        return written

    def fill_positions(self, run_id: str) -> dict[str, float]:
        """Symbol -> net units of a run's journaled fills (buys minus sells), non-zero only."""
        t = FillRow.__table__
        signed = func.sum(case((t.c.side == "buy", t.c.quantity), else_=-t.c.quantity))
        with self._connect() as conn:
            rows = conn.execute(
                select(t.c.symbol, signed).where(t.c.run_id == run_id).group_by(t.c.symbol)
            ).all()
        return {s: float(q) for s, q in rows if q and abs(q) > 1e-12}

    def session_state(self, run_id: str) -> SessionState:
        """What a restarted session rebuilds from: the cursor, each order's last state (and
        its version), every fill in time order."""
        from tradeloom.model import Fill as FillModel
        from tradeloom.model import Order as OrderModel
        from tradeloom.model import OrderStatus, OrderType, Side, TimeInForce

        run = self.run(run_id)
        orders: dict[str, tuple[Any, int]] = {}
        for row in self.table("orders", run_id):
            current = orders.get(row["client_order_id"])
            if current is not None and current[1] > row["version"]:
                continue
            extra = row.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra)
            created = int(extra.pop("created_ts", row["ts"]))
            order = OrderModel(
                row["client_order_id"], row["symbol"], Side(row["side"]), row["quantity"],
                OrderType(row["type"]), row["limit_price"], row["stop_price"],
                TimeInForce(row["tif"]), row["strategy_id"], OrderStatus(row["status"]),
                row["filled_quantity"], row["avg_fill_price"], created, row["ts"],
                reason=row["reason"], **extra,
            )  # fmt: skip
            orders[row["client_order_id"]] = (order, row["version"])
        fills = [
            FillModel(
                r["fill_id"],
                r["client_order_id"],
                r["symbol"],
                Side(r["side"]),
                r["quantity"],
                r["price"],
                r["fee"],
                r["ts"],
                r["strategy_id"],
            )
            for r in sorted(self.table("fills", run_id), key=lambda r: (r["ts"], r["id"]))
        ]
        return SessionState(run["id"], run["status"], run["cursor"], orders, fills)

    def finish_run(
        self, run_id: str, status: str, metrics: dict[str, Any] | None = None, error: str = ""
    ) -> None:
        with self._begin() as conn:
            conn.execute(
                RunRow.__table__.update()
                .where(RunRow.__table__.c.id == run_id)
                .values(status=status, finished_at=now_iso(), metrics=metrics, error=error or None)
            )
            self._audit(conn, "run.finished", run_id, {"status": status, "error": error or None})

    def audit(self, kind: str, payload: Any, run_id: str | None = None) -> audit.Anchor:
        """Append one record (an operator action, a kill) to the audit log; returns its head."""
        with self._begin() as conn:
            return self._audit(conn, kind, run_id, payload)

    # --- reading --------------------------------------------------------------------------------
    def runs(self, limit: int | None = None, status: str | None = None) -> list[RunSummary]:
        t = RunRow.__table__
        orders = (
            select(func.count(func.distinct(OrderRow.client_order_id)))
            .where(OrderRow.run_id == t.c.id)
            .scalar_subquery()
        )
        fills = select(func.count()).where(FillRow.run_id == t.c.id).scalar_subquery()
        query = select(t, orders.label("n_orders"), fills.label("n_fills")).order_by(
            t.c.started_at.desc(), t.c.id
        )
        if status is not None:
            query = query.where(t.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self._connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            RunSummary(
                r["id"],
                r["mode"],
                r["status"],
                r["title"],
                r["started_at"],
                r["finished_at"],
                r["config_hash"],
                _metric(r["metrics"], "total_return"),
                int(r["n_orders"]),
                int(r["n_fills"]),
            )
            for r in rows
        ]

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's row (a unique prefix of its id is enough), with its config."""
        if not run_id:
            raise StoreError("give a run id (or a prefix of one); see `tradeloom runs list`")
        with self._connect() as conn:
            rows = (
                conn.execute(
                    select(RunRow.__table__).where(
                        RunRow.__table__.c.id.startswith(run_id, autoescape=True)
                    )
                )
                .mappings()
                .all()
            )
            rows = [r for r in rows if r["id"].startswith(run_id)]  # SQLite LIKE ignores case
            if not rows:
                raise StoreError(
                    f"no run {run_id!r} in {display_url(self.url)}; see `tradeloom runs list`"
                )
            if len(rows) > 1 and not any(r["id"] == run_id for r in rows):
                raise StoreError(
                    f"run id prefix {run_id!r} matches {len(rows)} runs "
                    f"({', '.join(sorted(r['id'] for r in rows)[:5])}); give more characters"
                )
            row = next((r for r in rows if r["id"] == run_id), rows[0])
            config = conn.execute(
                select(DeploymentRow.config).where(DeploymentRow.config_hash == row["config_hash"])
            ).scalar()
        return {**dict(row), "config": config}

    def compare(self, a: str, b: str) -> RunComparison:
        """Two runs side by side: their metrics, and whether the code, config, data and plugin
        versions they ran with differ (and, for the config, which values)."""
        ra, rb = self.run(a), self.run(b)
        metrics_a, metrics_b = ra.get("metrics") or {}, rb.get("metrics") or {}
        names = sorted(set(metrics_a) | set(metrics_b))
        config_changes = _diff(ra.get("config") or {}, rb.get("config") or {})
        plugins_a, plugins_b = set(ra["plugins"] or []), set(rb["plugins"] or [])
        return RunComparison(
            a=ra["id"],
            b=rb["id"],
            metrics=[(n, metrics_a.get(n), metrics_b.get(n)) for n in names],
            code_differs=ra["code_hash"] != rb["code_hash"],
            config_differs=ra["config_hash"] != rb["config_hash"],
            data_differs=ra["data_fingerprint"] != rb["data_fingerprint"],
            plugins_differ=plugins_a != plugins_b,
            framework_differs=ra["framework_version"] != rb["framework_version"],
            config_changes=config_changes,
            plugin_changes=sorted(plugins_a ^ plugins_b),
            code_changes=sorted(
                k for k in set(ra["code"] or {}) | set(rb["code"] or {})
                if (ra["code"] or {}).get(k, {}).get("sha256")
                != (rb["code"] or {}).get(k, {}).get("sha256")
            ),
        )  # fmt: skip

    def counts(self, run_id: str) -> dict[str, int]:
        """Rows per table of a run: ``orders`` (distinct orders), ``order_states``, ``fills``,
        ``positions``, ``equity``, ``risk_events``, ``audit``."""
        out: dict[str, int] = {}
        with self._connect() as conn:
            for name, model in _TABLES.items():
                t = model.__table__
                key = "order_states" if name == "orders" else name
                out[key] = int(
                    conn.execute(select(func.count()).where(t.c.run_id == run_id)).scalar() or 0
                )
            distinct = select(func.count(func.distinct(OrderRow.client_order_id))).where(
                OrderRow.run_id == run_id
            )
            out["orders"] = int(conn.execute(distinct).scalar() or 0)
        return out

    def table(self, name: str, run_id: str) -> list[dict[str, Any]]:
        """The rows of one of a run's tables (orders, fills, positions, equity, risk_events),
        in time order; or its audit records (``audit``)."""
        model = _TABLES.get(name)
        if model is None:
            raise StoreError(f"unknown table {name!r}; tables: {', '.join(_TABLES)}")
        t = model.__table__
        query = select(t).where(t.c.run_id == run_id)
        order = [t.c.seq] if name == "audit" else [t.c.ts, *[c for c in t.primary_key.columns]]
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(*order)).mappings().all()]

    def export(self, run_id: str, fmt: str, out_dir: str | Path) -> dict[str, Path]:
        """Write a run's orders, fills, positions, risk events and audit records as CSV files or
        JSON lines into ``out_dir``; returns table -> path."""
        if fmt not in ("csv", "jsonl"):
            raise StoreError(f"unknown export format {fmt!r}; use csv or jsonl")
        run = self.run(run_id)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for name in ("orders", "fills", "positions", "risk_events", "audit"):
            rows = self.table(name, run["id"])
            columns = [c.name for c in _TABLES[name].__table__.columns]
            path = out / f"{name}.{fmt}"
            with path.open("w", encoding="utf-8", newline="") as fh:
                if fmt == "csv":
                    writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
                    writer.writeheader()
                    writer.writerows(rows)
                else:
                    for row in rows:
                        fh.write(audit.canonical(row) + "\n")
            written[name] = path
        run_path = out / f"run.{'json' if fmt == 'csv' else 'jsonl'}"
        run_path.write_text(audit.canonical(run) + "\n", encoding="utf-8")
        written["run"] = run_path
        return written

    def prune(
        self,
        older_than: timedelta,
        *,
        dry_run: bool = False,
        only: Sequence[str] | None = None,
    ) -> list[str]:
        """Delete the runs that started more than ``older_than`` ago (and, with ``only``, are
        among those ids: what a dry run listed), with their orders, fills, positions, equity
        and risk events. Running sessions are never pruned. The audit log is append-only: it
        keeps their records and gains one saying what was pruned."""
        cutoff = (datetime.now(UTC) - older_than).isoformat(timespec="microseconds")
        t = RunRow.__table__
        with self._begin() as conn:
            query = select(t.c.id).where(t.c.started_at < cutoff, t.c.status != "running")
            if only is not None:
                query = query.where(t.c.id.in_(list(only)))
            ids = sorted(r[0] for r in conn.execute(query))
            if ids and not dry_run:
                for model in _RUN_TABLES:
                    conn.execute(delete(model.__table__).where(model.__table__.c.run_id.in_(ids)))
                conn.execute(delete(t).where(t.c.id.in_(ids)))
                self._audit(conn, "runs.pruned", None, {"older_than": str(older_than), "runs": ids})
        return ids

    # --- the audit log --------------------------------------------------------------------------
    def audit_head(self) -> audit.Anchor | None:
        with self._connect() as conn:
            row = conn.execute(
                select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
            ).first()
        return None if row is None else audit.Anchor(int(row[0]), row[1])

    def audit_verify(self, anchor: audit.Anchor | None = None) -> audit.VerifyReport:
        return audit.verify(self._audit_rows(), anchor)

    def _audit_rows(self) -> Iterator[tuple[int, str, str, str | None, str, str, str]]:
        t = AuditRow.__table__
        with self._connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(
                select(t.c.seq, t.c.recorded_at, t.c.kind, t.c.run_id, t.c.record,
                       t.c.prev_hash, t.c.hash).order_by(t.c.seq)
            )  # fmt: skip
            for row in result:
                yield tuple(row)  # type: ignore[misc]

    def _audit(self, conn: Connection, kind: str, run_id: str | None, payload: Any) -> audit.Anchor:
        """Append to the chain inside ``conn``'s transaction, which holds the write lock."""
        if self.dialect == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_AUDIT_LOCK})")
        last = conn.execute(
            select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
        ).first()
        seq, prev = (1, audit.GENESIS) if last is None else (int(last[0]) + 1, last[1])
        recorded_at = now_iso()
        record = audit.record_text(seq, recorded_at, kind, run_id, payload)
        digest = audit.chain_hash(prev, record)
        conn.execute(
            insert(AuditRow.__table__),
            [{"seq": seq, "recorded_at": recorded_at, "kind": kind, "run_id": run_id,
              "record": record, "prev_hash": prev, "hash": digest}],
        )  # fmt: skip
        return audit.Anchor(seq, digest)

    # --- internals ------------------------------------------------------------------------------
    def _deployment(self, conn: Connection, config_hash: str, config: dict[str, Any]) -> None:
        """Store a deployment the first time its config hash is seen, and audit its content
        (so an edit of the stored config is caught by the chain)."""
        plain = audit._plain(config)
        stmt = _insert_ignore(self.dialect, DeploymentRow, ["config_hash"]).values(
            config_hash=config_hash, config=plain, created_at=now_iso()
        )
        if conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount:
            self._audit(conn, "config", None, {"config_hash": config_hash, "config": plain})

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            engine = self.engine
            with engine.connect().execution_options(tradeloom_write=True) as conn, conn.begin():
                yield conn
        except (OperationalError, DatabaseError) as exc:
            raise self._unreachable(exc) from exc

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except (OperationalError, DatabaseError) as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: Exception) -> StoreError:
        text = str(getattr(exc, "orig", None) or exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        hint = ""
        if self.dialect == "postgresql" and isinstance(exc, OperationalError):
            hint = (
                "; check that the PostgreSQL server is running and reachable, and the user, "
                "password and database in store.url"
            )
        elif "not a database" in first:
            hint = "; store.url points at a file that is not a SQLite database"
        return StoreError(f"store {display_url(self.url)}: {first}{hint}")


_TABLES = {
    "orders": OrderRow,
    "fills": FillRow,
    "positions": PositionRow,
    "equity": EquityRow,
    "risk_events": RiskEventRow,
    "audit": AuditRow,
}


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        detail = f" ({exc})" if isinstance(exc, ValueError) else ""
        raise StoreError(
            f"store.url {_mask_password(url)!r} is not a database URL{detail}; use "
            "sqlite:///path/to/tradeloom.db or postgresql+psycopg://user@host:5432/dbname"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"store.url {display_url(url)!r}: cannot create the folder {folder} "
                    f"({exc.strerror or exc}); point store.url at a writable path"
                ) from None
        engine = create_engine(parsed, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None  # transactions are begun explicitly, below
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Writers take the write lock up front (no deadlock when two upgrade a read lock);
            # readers begin deferred and, in WAL mode, never block a writer.
            write = conn.get_execution_options().get("tradeloom_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(
            f"store.url {display_url(url)!r}: only SQLite (sqlite:///...) and PostgreSQL "
            "(postgresql+psycopg://...) stores are supported"
        )
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"store.url {display_url(url)!r}: {exc}; use postgresql+psycopg://"
        ) from None


def _bulk(conn: Connection, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows through the driver's ``executemany`` (SQLAlchemy's per-row parameter
    processing costs more than the database here); every row has the same keys."""
    if not rows:
        return
    columns = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    if conn.dialect.name == "postgresql":  # COPY: one stream instead of a statement per row
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {quote(model.__tablename__)} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(tuple(_cell(row[c]) for c in columns))
        finally:
            cursor.close()
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {quote(model.__tablename__)} ({names}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    conn.exec_driver_sql(sql, [tuple(_cell(row[c]) for c in columns) for row in rows])


def _cell(value: Any) -> Any:
    """A value as the driver takes it: JSON columns as their text."""
    return audit.canonical(value) if isinstance(value, dict | list) else value


def _insert_ignore(dialect: str, model: Any, keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING, for SQLite and PostgreSQL."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model.__table__).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model.__table__).on_conflict_do_nothing(index_elements=keys)


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if x != x else x


def _order_row(run_id: str, order: Order, version: int) -> dict[str, Any]:
    return {
        "run_id": run_id, "client_order_id": order.client_order_id, "version": version,
        "ts": int(order.updated_ts), "status": order.status.value,
        "strategy_id": order.strategy_id, "symbol": order.symbol, "side": order.side.value,
        "type": order.type.value, "quantity": float(order.quantity),
        "limit_price": _f(order.limit_price), "stop_price": _f(order.stop_price),
        "tif": order.tif.value, "filled_quantity": float(order.filled_quantity),
        "avg_fill_price": float(order.avg_fill_price), "reason": order.reason or "",
        "extra": _order_extra(order),
    }  # fmt: skip


_EXTRA_DEFAULTS = {
    "triggered": False, "trail_amount": None, "trail_percent": None, "oco_group": "",
    "parent_id": "",
}  # fmt: skip


def _order_extra(order: Order) -> dict[str, Any] | None:
    """The fields a restart needs beyond the columns (``None``: all at their defaults)."""
    extra = {k: getattr(order, k) for k, v in _EXTRA_DEFAULTS.items() if getattr(order, k) != v}
    if order.created_ts != order.updated_ts:
        extra["created_ts"] = int(order.created_ts)
    return extra or None


def _order_rows(
    run_id: str, order_log: Sequence[Order] | None, result: BacktestResult
) -> list[dict[str, Any]]:
    if order_log is not None:
        versions: dict[str, int] = {}
        rows = []
        for order in order_log:
            v = versions[order.client_order_id] = versions.get(order.client_order_id, -1) + 1
            rows.append(_order_row(run_id, order, v))
        return rows
    frame = result.orders
    rows = []
    for rec in frame.to_dict("records"):
        rows.append({
            "run_id": run_id, "client_order_id": rec["client_order_id"], "version": 0,
            "ts": _ns(rec.get("updated_time", rec.get("created_time"))),
            "status": str(rec["status"]), "strategy_id": str(rec.get("strategy_id", "")),
            "symbol": str(rec["symbol"]), "side": str(rec["side"]), "type": str(rec["type"]),
            "quantity": float(rec["quantity"]), "limit_price": _f(rec.get("limit_price")),
            "stop_price": _f(rec.get("stop_price")), "tif": str(rec.get("tif", "")),
            "filled_quantity": float(rec["filled_quantity"]),
            "avg_fill_price": _f(rec.get("avg_fill_price")) or 0.0,
            "reason": "" if rec.get("reason") is None or rec.get("reason") != rec.get("reason")
            else str(rec["reason"]),
        })  # fmt: skip
    return rows


def _ns(value: Any) -> int:
    import pandas as pd

    if value is None or value != value:
        return 0
    return int(pd.Timestamp(value).as_unit("ns").value)


def _fill_row(run_id: str, fill: Fill) -> dict[str, Any]:
    return {
        "run_id": run_id, "fill_id": fill.fill_id, "client_order_id": fill.client_order_id,
        "ts": int(fill.ts), "strategy_id": fill.strategy_id, "symbol": fill.symbol,
        "side": fill.side.value, "quantity": float(fill.quantity), "price": float(fill.price),
        "fee": float(fill.fee),
    }  # fmt: skip


def _fill_rows(run_id: str, result: BacktestResult) -> list[dict[str, Any]]:
    rows = []
    for rec in result.fills.to_dict("records"):
        rows.append({
            "run_id": run_id, "fill_id": str(rec["fill_id"]),
            "client_order_id": str(rec["client_order_id"]), "ts": _ns(rec["time"]),
            "strategy_id": str(rec.get("strategy_id", "")), "symbol": str(rec["symbol"]),
            "side": str(rec["side"]), "quantity": float(rec["quantity"]),
            "price": float(rec["price"]), "fee": float(rec["fee"]),
        })  # fmt: skip
    return rows


def _risk_rows(run_id: str, result: BacktestResult) -> list[dict[str, Any]]:
    rows = []
    for rec in result.risk_events.to_dict("records"):
        rows.append({
            "run_id": run_id, "ts": _ns(rec["time"]), "kind": str(rec["kind"]),
            "scope": str(rec["scope"]), "state": str(rec["state"] or ""),
            "rule": str(rec["rule"] or ""), "reason": str(rec["reason"] or ""),
            "limit": _f(rec["limit"]), "observed": _f(rec["observed"]),
            "client_order_id": str(rec["client_order_id"] or ""), "by": str(rec["by"]),
        })  # fmt: skip
    return rows


def _equity_rows(run_id: str, result: BacktestResult) -> list[dict[str, Any]]:
    import numpy as np

    equity = result.equity
    n = len(equity)
    if not n:
        return []
    at = np.unique(np.linspace(0, n - 1, min(n, EQUITY_SNAPSHOTS)).round().astype(np.int64))
    columns = (
        equity.index.as_unit("ns").asi8[at].tolist(),
        equity["cash"].to_numpy()[at].tolist(),
        equity["position_value"].to_numpy()[at].tolist(),
        equity["equity"].to_numpy()[at].tolist(),
    )
    return [
        {"run_id": run_id, "ts": t, "cash": c, "position_value": v, "equity": e}
        for t, c, v, e in zip(*columns, strict=True)
    ]


def _digest(rows: Iterable[dict[str, Any]]) -> str:
    """SHA-256 of the rows' canonical JSON lines: the audit record pins what was written."""
    import hashlib

    h = hashlib.sha256()
    for row in rows:
        h.update(audit.canonical(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def _metric(metrics: Any, name: str) -> float | None:
    if not isinstance(metrics, dict):
        return None
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


def _provenance_payload(run: dict[str, Any], prov: dict[str, Any]) -> dict[str, Any]:
    return {
        "mode": run["mode"], "title": run["title"], "config_hash": run["config_hash"],
        "data_fingerprint": run["data_fingerprint"],
        "framework_version": run["framework_version"], "plugins": run["plugins"],
        "code_hash": run["code_hash"], "git_commit": run["git_commit"],
    }  # fmt: skip


__all__ = [
    "DEFAULT_URL",
    "RunComparison",
    "RunSummary",
    "Store",
    "StoreError",
    "default_url",
    "display_url",
]
