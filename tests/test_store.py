"""The journal store (issue 6): schema and migrations, backtests journaled at the end, the
write-ahead API of paper and live sessions, concurrent writers, prune, export and bad URLs —
on SQLite and on PostgreSQL (each test in its own schema), plus provenance.

PostgreSQL: ``TRADELOOM_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
trust auth). When it cannot be reached the PostgreSQL cases are skipped — except under CI
(the environment variable ``CI`` set), where they fail.

This module is also imported by ``test_audit.py`` and ``test_journal_secrets.py`` for
:func:`store_url_for`, and by the writer processes of the concurrency test (spawned: keep its
top-level imports light).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tradeloom.model import Fill, Order, OrderStatus, Side
from tradeloom.store import Store, StoreError
from tradeloom.store import db as store_db
from tradeloom.store.models import metadata

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

PG_DSN = os.environ.get("TRADELOOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
"""libpq URL of the test server (a database where we may create and drop schemas)."""

JOURNAL_TABLES = {
    "deployments", "runs", "orders", "fills", "positions", "equity", "risk_events", "audit_log",
    "studies", "trials",
}  # fmt: skip


# --- one database per test: a SQLite file, or a PostgreSQL schema --------------------------------


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@functools.cache
def _pg_problem() -> str | None:
    """Why the test server cannot be used (``None``: it can). Asked once per process."""
    import psycopg  # here and below, not at the top: the writer processes import this module

    try:
        with psycopg.connect(PG_DSN, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip()}"
    return None


def require_postgres() -> None:
    """Skip when PostgreSQL is unreachable — but fail under CI, where it must run."""
    problem = _pg_problem()
    if problem is None:
        return
    shown = make_url(PG_DSN).render_as_string(hide_password=True)
    if _ci():
        pytest.fail(
            f"PostgreSQL at {shown} is unreachable ({problem}); CI is set, so the PostgreSQL "
            "journal tests must run: start the server or set TRADELOOM_TEST_POSTGRES",
            pytrace=False,
        )
    pytest.skip(f"PostgreSQL at {shown} is unreachable ({problem}); CI would fail here")


def pg_url(schema: str) -> str:
    """The store URL for ``schema`` on the test server (search_path set per connection)."""
    url = make_url(PG_DSN).set(drivername="postgresql+psycopg")
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@contextmanager
def store_url_for(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: ``sqlite`` (a file in ``tmp_path``) or ``postgresql`` (a new
    schema ``t_<uuid>``, dropped with everything in it afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
        return
    assert kind == "postgresql", kind
    require_postgres()
    import psycopg

    schema = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield pg_url(schema)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url_for(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[..., Store]]:
    """``open_store(**kw)``: a Store on the test's database, closed (before the schema is
    dropped) at the end."""
    stores: list[Store] = []

    def make(url: str = store_url, **kwargs: Any) -> Store:
        store = Store(url, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def execute(store: Store, statement: str, **params: Any) -> None:
    """Raw SQL, committed (tampering, back-dating, stamping revisions)."""
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def rows_of(store: Store, table: str, order_by: str | None = None) -> list[dict[str, Any]]:
    """Every row of ``table`` as the database has it now (reflected: JSON columns decoded)."""
    with store.engine.connect() as conn:
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        query = sa.select(t)
        if order_by:
            query = query.order_by(*[t.c[c.strip()] for c in order_by.split(",")])
        return [dict(r) for r in conn.execute(query).mappings()]


def count(store: Store, table: str, run_id: str | None = None) -> int:
    query = f"SELECT COUNT(*) FROM {table}" + (" WHERE run_id = :r" if run_id else "")
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(query), {"r": run_id}).scalar_one())


def table_names(conn: sa.Connection) -> set[str]:
    from tradeloom.store import migrate

    return set(migrate.table_names(conn))


def schema_differences(conn: sa.Connection) -> list[Any]:
    """What alembic's autogenerate finds between the sqlmodel classes and the database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return compare_metadata(context, metadata)


def canonical(value: Any) -> str:
    """Canonical JSON, written here independently of tradeloom.store.audit."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_lines(rows: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update((canonical(row) + "\n").encode())
    return h.hexdigest()


def payloads(store: Store, run_id: str) -> list[tuple[str, Any]]:
    return [(r["kind"], json.loads(r["record"])["payload"]) for r in store.table("audit", run_id)]


# --- schema ---------------------------------------------------------------------------------------


def test_an_empty_database_gets_the_latest_schema_on_first_use(
    open_store: Callable[..., Store],
) -> None:
    unchecked = open_store(check=False)
    assert unchecked.current() is None  # check=False touches nothing

    store = open_store()
    from tradeloom.store.migrate import known_revisions

    assert known_revisions() == ["0001", "0002", "0003", "0004"]
    assert store.current() == store.head() == "0004"
    with store.engine.connect() as conn:
        assert table_names(conn) == JOURNAL_TABLES | {"alembic_version"}
        # The sqlmodel classes and the migrated schema agree: columns, types, nullability,
        # indexes, unique constraints and foreign keys.
        assert schema_differences(conn) == []
    assert set(metadata.tables) == JOURNAL_TABLES

    again = open_store()  # a second open finds the schema and changes nothing
    assert again.current() == "0004"
    assert again.runs() == []
    report = again.audit_verify()
    assert (report.ok, report.records, report.head) == (True, 0, None)


def test_journal_tables_without_a_revision_are_refused(open_store: Callable[..., Store]) -> None:
    store = open_store(check=False)
    execute(store, "CREATE TABLE runs (id VARCHAR(40) PRIMARY KEY)")
    with pytest.raises(StoreError, match="has journal tables but no schema revision"):
        open_store()


def _insert_0001_journal(store: Store) -> dict[str, list[dict[str, Any]]]:
    """A deployment, a run, orders, fills, a position, equity and audit records written with
    the 0001 columns (reflected from the database, so nothing of 0002 is assumed)."""
    reflected = sa.MetaData()
    with store.engine.connect() as conn:
        reflected.reflect(conn)
    assert "risk_events" not in reflected.tables
    assert "git_commit" not in reflected.tables["runs"].c
    t = reflected.tables
    rows: dict[str, list[dict[str, Any]]] = {
        "deployments": [
            {"config_hash": "c" * 64, "config": {"strategy": {"type": "sma"}},
             "created_at": "2020-01-01T00:00:00.000000+00:00"},
        ],
        "runs": [
            {"id": "oldrun000001", "mode": "backtest", "status": "finished", "title": "old",
             "started_at": "2020-01-01T00:00:00.000000+00:00",
             "finished_at": "2020-01-01T00:01:00.000000+00:00", "config_hash": "c" * 64,
             "data_fingerprint": "fp", "framework_version": "0.1.0", "plugins": ["p 1.0"],
             "code_hash": "a" * 64, "code": {"S": {"sha256": "a" * 64}},
             "metrics": {"total_return": 0.25}, "error": None, "out_dir": "out"},
        ],
        "orders": [
            {"run_id": "oldrun000001", "client_order_id": coid, "version": v, "ts": 1_000 + v,
             "status": status, "strategy_id": "s", "symbol": "IBM", "side": "buy",
             "type": "market", "quantity": 10.0, "limit_price": None, "stop_price": None,
             "tif": "gtc", "filled_quantity": 10.0 if status == "filled" else 0.0,
             "avg_fill_price": 101.5 if status == "filled" else 0.0, "reason": ""}
            for coid, v, status in [("o1", 0, "pending"), ("o1", 1, "accepted"),
                                    ("o1", 2, "filled"), ("o2", 0, "pending")]
        ],
        "fills": [
            {"run_id": "oldrun000001", "fill_id": "f1", "client_order_id": "o1", "ts": 1_002,
             "strategy_id": "s", "symbol": "IBM", "side": "buy", "quantity": 10.0,
             "price": 101.5, "fee": 1.0},
        ],
        "positions": [
            {"run_id": "oldrun000001", "ts": 1_002, "symbol": "IBM", "quantity": 10.0,
             "avg_price": 101.5},
        ],
        "equity": [
            {"run_id": "oldrun000001", "ts": ts, "cash": c, "position_value": v, "equity": c + v}
            for ts, c, v in [(1_000, 10_000.0, 0.0), (1_002, 8_984.0, 1_015.0)]
        ],
    }  # fmt: skip
    with store.engine.begin() as conn:
        for name, table_rows in rows.items():
            conn.execute(t[name].insert(), table_rows)
    store.audit("run.started", {"mode": "backtest"}, "oldrun000001")
    store.audit("operator.note", {"text": "written at 0001"})
    store.audit("run.finished", {"status": "finished"}, "oldrun000001")
    return rows


def _strip_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


def test_migrations_carry_a_0001_journal_to_head(open_store: Callable[..., Store]) -> None:
    store = open_store(check=False)
    assert store.upgrade("0001") == "0001"
    written = _insert_0001_journal(store)
    orders = {"orders": "client_order_id, version", "fills": "fill_id", "positions": "symbol",
              "equity": "ts", "runs": "id", "deployments": "config_hash"}  # fmt: skip
    before = {name: rows_of(store, name, orders[name]) for name in written}
    audit_before = rows_of(store, "audit_log", "seq")
    for name, table_rows in written.items():  # what went in is what is there
        surrogate = name in ("orders", "fills", "positions")
        assert (_strip_ids(before[name]) if surrogate else before[name]) == table_rows, name

    with pytest.raises(StoreError) as info:  # at 0001, a normal open is refused
        open_store()
    message = str(info.value)
    assert "tradeloom db upgrade" in message
    assert "0001" in message and "0004" in message

    assert store.upgrade() == "0004"
    assert store.current() == store.head()
    after = {name: rows_of(store, name, orders[name]) for name in written}
    for name in written:
        if name == "runs":  # the new columns (0002, 0003), empty for old runs
            assert [r.pop("git_commit") for r in after[name]] == [None]
            assert [r.pop("cursor") for r in after[name]] == [None]
        if name == "orders":  # 0003: the order fields a restart needs, none for old orders
            assert [r.pop("extra") for r in after[name]] == [None] * len(after[name])
        assert after[name] == before[name], name
    assert rows_of(store, "audit_log", "seq") == audit_before
    assert count(store, "risk_events") == 0

    reopened = open_store()  # now accepted, and readable through the API
    run = reopened.run("oldrun")
    assert (run["id"], run["git_commit"], run["metrics"]) == (
        "oldrun000001",
        None,
        {"total_return": 0.25},
    )
    assert run["config"] == {"strategy": {"type": "sma"}}
    (summary,) = reopened.runs()
    assert (summary.orders, summary.fills, summary.total_return) == (2, 1, 0.25)
    report = reopened.audit_verify()
    assert report.ok, report.problems
    assert report.records == 3
    # The new table takes rows, and the chain continues across the migration.
    execute(
        reopened,
        'INSERT INTO risk_events (run_id, ts, kind, scope, state, rule, reason, "limit", '
        "observed, client_order_id, by) VALUES ('oldrun000001', 1, 'state', 'global', "
        "'halted', 'max-drawdown', 'r', 10.0, 11.0, '', 'rule')",
    )
    assert [r["state"] for r in reopened.table("risk_events", "oldrun000001")] == ["halted"]
    reopened.audit("operator.note", {"text": "after the upgrade"})
    assert reopened.audit_verify().records == 4 and reopened.audit_verify().ok


def test_upgrading_an_empty_database_step_by_step(open_store: Callable[..., Store]) -> None:
    store = open_store(check=False)
    assert store.upgrade("0001") == "0001"
    with store.engine.connect() as conn:
        first = JOURNAL_TABLES - {"risk_events", "studies", "trials"}
        assert table_names(conn) == first | {"alembic_version"}
    assert store.upgrade("0002") == "0002"
    assert store.upgrade("0003") == "0003"
    with store.engine.connect() as conn:
        assert "studies" not in table_names(conn)
    assert store.upgrade() == "0004"
    assert store.upgrade() == "0004"  # at head already: a no-op
    with store.engine.connect() as conn:
        assert table_names(conn) == JOURNAL_TABLES | {"alembic_version"}
        assert schema_differences(conn) == []


def test_a_store_written_by_a_newer_tradeloom_is_refused(
    open_store: Callable[..., Store],
) -> None:
    store = open_store()
    execute(store, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError) as info:
        open_store()
    message = str(info.value)
    assert "written by a newer tradeloom" in message
    assert "9999" in message and "0004" in message
    assert info.value.exit_code == 2


# --- backtests: one transaction at the end ----------------------------------------------------


def run_example(store: Store, *names: str, **kwargs: Any):  # -> BacktestResult
    from tradeloom.api import run_deployment
    from tradeloom.config import load_deployment
    from tradeloom.plugins import PluginHost

    host = PluginHost()
    resolved = load_deployment([EXAMPLES / n for n in names], host=host)
    return run_deployment(resolved, host, journal=store, **kwargs)


def _ns(value: Any) -> int:
    import pandas as pd

    return int(pd.Timestamp(value).as_unit("ns").value)


def _none_if_nan(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _text(value: Any) -> str:
    value = _none_if_nan(value)
    return "" if value is None else str(value)


def expected_positions(fills: Any) -> dict[str, tuple[float, float]]:
    """Final ``symbol -> (quantity, average entry price)``, from the fills alone."""
    books: dict[str, tuple[float, float]] = {}
    for f in fills.to_dict("records"):
        qty = f["quantity"] * (1.0 if f["side"] == "buy" else -1.0)
        held, avg = books.get(f["symbol"], (0.0, 0.0))
        if held == 0.0 or (held > 0) == (qty > 0):
            avg = (avg * abs(held) + f["price"] * abs(qty)) / (abs(held) + abs(qty))
            held += qty
        elif abs(held + qty) <= 1e-9:
            held, avg = 0.0, 0.0
        elif (held + qty > 0) == (held > 0):
            held += qty  # reduced: the entry price stays
        else:
            held, avg = held + qty, f["price"]  # flipped
        books[f["symbol"]] = (held, avg)
    return {s: b for s, b in books.items() if b[0] != 0.0}


def check_backtest_journal(store: Store, result: Any) -> dict[str, Any]:
    """Everything a journaled backtest must hold, checked against the result."""
    import numpy as np

    run_id = result.run_id
    prov = result.provenance
    run = store.run(run_id)
    assert (run["mode"], run["status"], run["error"]) == ("backtest", "finished", None)
    assert run["finished_at"] >= run["started_at"]
    for key in ("framework_version", "plugins", "code_hash", "code", "config_hash",
                "data_fingerprint", "git_commit"):  # fmt: skip
        assert run[key] == prov[key], key
    assert run["data_fingerprint"] == result.data_fingerprint != ""
    assert run["config"] == json.loads(json.dumps(result.config))
    assert run["metrics"]["total_return"] == pytest.approx(result.metrics.total_return)
    (summary,) = [s for s in store.runs() if s.id == run_id]
    assert (summary.orders, summary.fills) == (len(result.orders), len(result.fills))

    # Orders: every state change, versions 0..n per client order id, in time order.
    orders = store.table("orders", run_id)
    by_coid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(orders, key=lambda r: (r["client_order_id"], r["version"])):
        by_coid[row["client_order_id"]].append(row)
    final = result.orders.set_index("client_order_id")
    assert set(by_coid) == set(final.index)
    assert len(orders) > len(final)  # more than one state per order
    for coid, versions in by_coid.items():
        assert [r["version"] for r in versions] == list(range(len(versions))), coid
        assert versions[0]["status"] == "pending"
        assert [r["ts"] for r in versions] == sorted(r["ts"] for r in versions)
        last, want = versions[-1], final.loc[coid]
        assert last["status"] == str(want["status"]), coid
        assert last["filled_quantity"] == want["filled_quantity"]
        assert last["avg_fill_price"] == pytest.approx(_none_if_nan(want["avg_fill_price"]) or 0.0)
        assert (last["symbol"], last["side"], last["quantity"]) == (
            want["symbol"], str(want["side"]), want["quantity"],
        )  # fmt: skip

    # Fills: exactly the result's, in order.
    fills = store.table("fills", run_id)
    assert [
        (f["fill_id"], f["client_order_id"], f["symbol"], f["side"], f["quantity"], f["price"],
         f["fee"], f["ts"])
        for f in sorted(fills, key=lambda f: f["id"])
    ] == [
        (r["fill_id"], r["client_order_id"], r["symbol"], str(r["side"]), r["quantity"],
         r["price"], r["fee"], _ns(r["time"]))
        for r in result.fills.to_dict("records")
    ]  # fmt: skip

    # Equity: at most EQUITY_SNAPSHOTS evenly spaced snapshots, the last bar included, values
    # those of the equity curve at their times.
    equity = store.table("equity", run_id)
    curve = result.equity
    n = len(curve)
    assert len(equity) == min(n, store_db.EQUITY_SNAPSHOTS)
    at = np.unique(np.linspace(0, n - 1, len(equity)).round().astype(np.int64))
    index_ns = curve.index.as_unit("ns").asi8
    assert [e["ts"] for e in equity] == [int(index_ns[i]) for i in at]
    assert equity[0]["ts"] == int(index_ns[0]) and equity[-1]["ts"] == int(index_ns[-1])
    for e, i in zip(equity, at, strict=True):
        assert (e["cash"], e["position_value"], e["equity"]) == (
            curve["cash"].iloc[i], curve["position_value"].iloc[i], curve["equity"].iloc[i],
        )  # fmt: skip

    # Positions: the final book, at the last bar.
    positions = store.table("positions", run_id)
    assert {p["ts"] for p in positions} <= {int(index_ns[-1])}
    got = {p["symbol"]: (p["quantity"], p["avg_price"]) for p in positions}
    want_positions = expected_positions(result.fills)
    assert set(got) == set(want_positions)
    for symbol, (qty, avg) in want_positions.items():
        assert got[symbol] == (pytest.approx(qty, abs=1e-9), pytest.approx(avg, rel=1e-9))

    # Risk events: exactly the result's.
    risk = store.table("risk_events", run_id)
    assert [
        (r["ts"], r["kind"], r["scope"], r["state"], r["rule"], r["reason"], r["limit"],
         r["observed"], r["client_order_id"], r["by"])
        for r in sorted(risk, key=lambda r: r["id"])
    ] == [
        (_ns(r["time"]), r["kind"], r["scope"], _text(r["state"]), _text(r["rule"]),
         _text(r["reason"]), _none_if_nan(r["limit"]), _none_if_nan(r["observed"]),
         _text(r["client_order_id"]), r["by"])
        for r in result.risk_events.to_dict("records")
    ]  # fmt: skip

    # Audit: the deployment's config (once per config hash), run.started with the provenance,
    # one record per halt, kill and operator action, run.finished pinning the orders and fills
    # written (digests recomputed here from the rows).
    configs = [json.loads(r[4])["payload"] for r in store._audit_rows() if r[2] == "config"]
    assert [c for c in configs if c["config_hash"] == prov["config_hash"]] == [
        {"config_hash": prov["config_hash"], "config": run["config"]}
    ]
    records = payloads(store, run_id)
    kinds = [k for k, _ in records]
    halts = [r for r in sorted(risk, key=lambda r: r["id"])
             if r["by"] == "operator" or r["kind"] == "kill"
             or (r["kind"], r["state"]) == ("state", "halted")]  # fmt: skip
    assert kinds == ["run.started", *[f"risk.{r['kind']}" for r in halts], "run.finished"]
    started = records[0][1]
    assert started == {
        "mode": "backtest", "title": result.title, "config_hash": prov["config_hash"],
        "data_fingerprint": prov["data_fingerprint"],
        "framework_version": prov["framework_version"], "plugins": prov["plugins"],
        "code_hash": prov["code_hash"], "git_commit": prov["git_commit"],
    }  # fmt: skip
    for (_, payload), row in zip(records[1:-1], halts, strict=True):
        assert payload == {k: v for k, v in row.items() if k != "id"}
    finished = records[-1][1]
    order_rows = _strip_ids(sorted(orders, key=lambda r: r["id"]))
    fill_rows = _strip_ids(sorted(fills, key=lambda r: r["id"]))
    assert finished["status"] == "finished"
    assert (finished["orders"], finished["fills"], finished["risk_events"]) == (
        len(order_rows), len(fill_rows), len(risk),
    )  # fmt: skip
    assert finished["orders_sha256"] == digest_lines(order_rows)
    assert finished["fills_sha256"] == digest_lines(fill_rows)
    assert finished["metrics"] == run["metrics"]
    report = store.audit_verify()
    assert report.ok, report.problems
    return {"orders": orders, "fills": fills, "risk": risk, "positions": positions}


def test_a_backtest_is_journaled_completely(open_store: Callable[..., Store]) -> None:
    store = open_store()
    result = run_example(store, "sma-us-stocks.toml", out_dir="somewhere/out")
    rows = check_backtest_journal(store, result)
    assert len(result.fills) == 109 and len(rows["positions"]) == 4  # long and short books
    assert any(p["quantity"] < 0 for p in rows["positions"])
    assert rows["risk"] == []
    assert store.run(result.run_id)["out_dir"] == "somewhere/out"
    # The strategy's code hash is what its source files hash to (recomputed here).
    (name,) = result.provenance["code"]
    assert name == "tradeloom_strategies.sma_crossover.SmaCrossover"
    import tradeloom_strategies

    root = Path(tradeloom_strategies.__file__).parent
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    code = store.run(result.run_id)["code"][name]
    assert (code["sha256"], code["files"], code["package"]) == (
        h.hexdigest(), len(files), "tradeloom_strategies",
    )  # fmt: skip
    combined = hashlib.sha256(canonical({name: h.hexdigest()}).encode()).hexdigest()
    assert store.run(result.run_id)["code_hash"] == combined


def test_a_drawdown_halt_is_journaled_and_audited(open_store: Callable[..., Store]) -> None:
    store = open_store()
    result = run_example(store, "risk-controls.toml")
    rows = check_backtest_journal(store, result)
    kinds = Counter(r["kind"] for r in rows["risk"])
    assert kinds == {"reject": 96, "exit": 7, "state": 1}
    (halt,) = [r for r in rows["risk"] if r["kind"] == "state"]
    assert (halt["state"], halt["rule"], halt["limit"]) == ("halted", "max-drawdown", 10.0)
    assert halt["observed"] == pytest.approx(10.390241, abs=1e-6)
    assert [k for k, _ in payloads(store, result.run_id)] == [
        "run.started",
        "risk.state",
        "run.finished",
    ]
    assert rows["positions"] == []  # flattened after the halt


def test_equity_snapshots_are_thinned_evenly(
    open_store: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_db, "EQUITY_SNAPSHOTS", 97)
    store = open_store()
    result = run_example(store, "risk-controls.toml")
    assert len(result.equity) == 2306
    check_backtest_journal(store, result)  # asserts 97 rows, evenly spaced, first and last bar
    assert count(store, "equity", result.run_id) == 97


class Boom(Exception):
    pass


def test_a_failing_run_is_journaled_as_failed(open_store: Callable[..., Store]) -> None:
    from tradeloom.api import run_backtest
    from tradeloom.data import MarketData
    from tradeloom.errors import RunError
    from tradeloom.strategy import Strategy

    from helpers import bars

    class Explodes(Strategy):
        def on_bar(self, ctx, bar) -> None:  # type: ignore[no-untyped-def]
            if ctx.bar_count(bar.symbol) == 3:
                raise Boom("on purpose")
            ctx.buy(bar.symbol, 1)

    store = open_store()
    frame = bars([(100.0, 101.0, 99.0, 100.0)] * 6)
    with pytest.raises((RunError, Boom), match="on purpose"):
        run_backtest(
            MarketData({"X": frame}), [("explodes", Explodes())], journal=store,
            config={"strategy": {"type": "explodes"}},
            provenance={"code_hash": "e" * 64, "plugins": ["x 1"], "framework_version": "t"},
            title="explodes",
        )  # fmt: skip
    (summary,) = store.runs()
    assert (summary.mode, summary.status, summary.title) == ("backtest", "failed", "explodes")
    run = store.run(summary.id)
    assert "Boom" in run["error"] and "on purpose" in run["error"]
    assert run["finished_at"] is not None
    assert (run["code_hash"], run["plugins"]) == ("e" * 64, ["x 1"])
    assert run["config"] == {"strategy": {"type": "explodes"}}
    records = payloads(store, summary.id)
    assert [k for k, _ in records] == ["run.started", "run.finished"]
    assert records[1][1] == {"status": "failed", "error": run["error"]}
    assert store.audit_verify().ok


# --- paper and live: write-ahead -----------------------------------------------------------------


PROVENANCE = {
    "framework_version": "9.9.9", "plugins": ["tradeloom-strategies 1.0"], "code_hash": "c" * 64,
    "code": {"S": {"sha256": "c" * 64}}, "config_hash": "f" * 64, "data_fingerprint": "feed",
    "git_commit": "1" * 40,
}  # fmt: skip


def test_write_ahead_journal(open_store: Callable[..., Store]) -> None:
    store, reader = open_store(), open_store()  # reader: another connection pool
    store.begin_run("live-1", "paper", {"strategy": {"type": "s"}}, PROVENANCE, "paper run")
    run = reader.run("live-1")
    assert (run["status"], run["finished_at"], run["config_hash"]) == ("running", None, "f" * 64)
    assert (run["git_commit"], run["framework_version"]) == ("1" * 40, "9.9.9")

    order = Order("o-1", "IBM", Side.BUY, 10.0, strategy_id="s", created_ts=1, updated_ts=1)

    def send(o: Order) -> None:  # the venue call: the pending order is already on disk
        (row,) = reader.table("orders", "live-1")
        assert (row["client_order_id"], row["version"], row["status"]) == (
            o.client_order_id,
            0,
            "pending",
        )

    store.journal_order("live-1", order)
    send(order)
    accepted = dataclasses.replace(order, status=OrderStatus.ACCEPTED, updated_ts=2)
    assert store.journal_update("live-1", accepted) == 1
    partial = dataclasses.replace(
        accepted, status=OrderStatus.PARTIALLY_FILLED, filled_quantity=4.0,
        avg_fill_price=100.5, updated_ts=3,
    )  # fmt: skip
    assert store.journal_update("live-1", partial) == 2
    fill = Fill("f-1", "o-1", "IBM", Side.BUY, 4.0, 100.5, 0.25, 3, "s")
    store.journal_fill("live-1", fill)
    store.journal_fill("live-1", fill)  # re-delivered: dropped
    store.journal_fill("live-1", dataclasses.replace(fill, price=999.0))  # same id: dropped
    filled = dataclasses.replace(
        partial, status=OrderStatus.FILLED, filled_quantity=10.0, avg_fill_price=100.8,
        updated_ts=4,
    )  # fmt: skip
    store.journal_fill("live-1", Fill("f-2", "o-1", "IBM", Side.BUY, 6.0, 101.0, 0.25, 4, "s"))
    assert store.journal_update("live-1", filled) == 3
    store.finish_run("live-1", "finished", metrics={"total_return": 0.01})

    rows = reader.table("orders", "live-1")
    assert [(r["version"], r["status"], r["filled_quantity"], r["ts"]) for r in rows] == [
        (0, "pending", 0.0, 1), (1, "accepted", 0.0, 2), (2, "partially_filled", 4.0, 3),
        (3, "filled", 10.0, 4),
    ]  # fmt: skip
    assert [(f["fill_id"], f["quantity"], f["price"]) for f in reader.table("fills", "live-1")] == [
        ("f-1", 4.0, 100.5), ("f-2", 6.0, 101.0),
    ]  # fmt: skip
    run = reader.run("live-1")
    assert (run["status"], run["metrics"], run["error"]) == (
        "finished",
        {"total_return": 0.01},
        None,
    )
    (summary,) = reader.runs()
    assert (summary.orders, summary.fills, summary.total_return) == (1, 2, 0.01)
    records = payloads(reader, "live-1")
    assert [k for k, _ in records] == ["run.started", "order.submitted", "run.finished"]
    assert records[1][1] == {k: v for k, v in rows[0].items() if k != "id"}
    assert records[2][1] == {"status": "finished", "error": None}
    assert reader.audit_verify().ok
    assert reader.runs(status="running") == []


def test_journal_fill_says_whether_the_fill_is_new(
    open_store: Callable[..., Store], store_url: str, request: pytest.FixtureRequest
) -> None:
    store = open_store()
    store.begin_run("live-2", "live", {}, PROVENANCE)
    fill = Fill("f-1", "o-1", "IBM", Side.SELL, 3.0, 20.0, 0.0, 9, "s")
    assert (
        store.journal_fill("live-2", Fill("f-0", "o-1", "IBM", Side.SELL, 1.0, 20.0, 0.0, 8, "s"))
        is True
    )
    assert store.journal_fill("live-2", fill) is True
    assert count(store, "fills", "live-2") == 2
    assert store.journal_fill("live-2", fill) is False  # re-delivered
    assert store.journal_fill("live-2", dataclasses.replace(fill, quantity=5.0)) is False
    assert [(f["fill_id"], f["quantity"]) for f in store.table("fills", "live-2")] == [
        ("f-0", 1.0), ("f-1", 3.0),
    ]  # fmt: skip
    # The same fill id in another run is another fill.
    store.begin_run("live-3", "live", {}, PROVENANCE)
    assert store.journal_fill("live-3", fill) is True


def test_a_deployment_config_is_audited_once(
    open_store: Callable[..., Store], store_url: str, request: pytest.FixtureRequest
) -> None:
    store = open_store()
    for i in range(3):
        store.begin_run(f"same-{i}", "paper", {"strategy": {"fast": 5}}, {})
    store.begin_run("other", "paper", {"strategy": {"fast": 6}}, {})
    kinds = [r[2] for r in store._audit_rows()]
    assert count(store, "deployments") == 2
    assert kinds == ["config", "run.started", "run.started", "run.started", "config", "run.started"]


def test_record_failure_and_operator_records(open_store: Callable[..., Store]) -> None:
    store = open_store()
    store.record_failure("bad-1", "live", {"x": 1}, PROVENANCE, "ConnectionError: venue down")
    anchor = store.audit("operator.kill", {"by": "ops", "reason": "test"}, "bad-1")
    run = store.run("bad-1")
    assert (run["status"], run["error"]) == ("failed", "ConnectionError: venue down")
    assert [k for k, _ in payloads(store, "bad-1")] == [
        "run.started",
        "run.finished",
        "operator.kill",
    ]
    assert anchor == store.audit_head() and anchor.seq == 4  # config, started, finished, kill
    assert store.audit_verify(anchor).ok


# --- several processes at once -------------------------------------------------------------------

WRITERS, RUNS_EACH, ORDERS_EACH, AUDITS_EACH = 2, 5, 3, 10


def _writer(url: str, worker: int, barrier: Any) -> None:
    """One process: RUNS_EACH paper runs, write-ahead, with many audit appends."""
    store = Store(url)
    barrier.wait(120)
    for r in range(RUNS_EACH):
        run_id = f"w{worker}-r{r}"
        store.begin_run(run_id, "paper", {"worker": worker}, {"framework_version": "t"}, run_id)
        for k in range(ORDERS_EACH):
            order = Order(f"{run_id}-o{k}", "IBM", Side.BUY, 1.0 + k, strategy_id="s",
                          created_ts=k, updated_ts=k)  # fmt: skip
            store.journal_order(run_id, order)
            store.journal_update(run_id, dataclasses.replace(order, status=OrderStatus.ACCEPTED))
            fill = Fill(f"{run_id}-f{k}", order.client_order_id, "IBM", Side.BUY,
                        order.quantity, 100.0 + k, 0.0, k + 1, "s")  # fmt: skip
            assert store.journal_fill(run_id, fill)
            store.journal_update(run_id, dataclasses.replace(
                order, status=OrderStatus.FILLED, filled_quantity=order.quantity,
                avg_fill_price=fill.price, updated_ts=k + 1,
            ))  # fmt: skip
        for a in range(AUDITS_EACH):
            store.audit("operator.note", {"worker": worker, "run": r, "n": a}, run_id)
        store.finish_run(run_id, "finished", metrics={"total_return": worker + r / 10})
    store.close()


def test_two_processes_writing_at_once_lose_nothing(open_store: Callable[..., Store]) -> None:
    store = open_store()  # the schema exists before the writers start
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_writer, args=(store.url, w, barrier)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0] * WRITERS

    runs = store.runs()
    expected = {f"w{w}-r{r}" for w in range(WRITERS) for r in range(RUNS_EACH)}
    assert {r.id for r in runs} == expected
    assert all(
        (r.status, r.orders, r.fills) == ("finished", ORDERS_EACH, ORDERS_EACH) for r in runs
    )
    total_runs = WRITERS * RUNS_EACH
    assert count(store, "runs") == total_runs
    assert count(store, "orders") == total_runs * ORDERS_EACH * 3
    assert count(store, "fills") == total_runs * ORDERS_EACH
    assert count(store, "deployments") == WRITERS
    per_run = 1 + ORDERS_EACH + AUDITS_EACH + 1  # started, submitted, notes, finished
    chain = rows_of(store, "audit_log", "seq")
    configs = [json.loads(r["record"])["payload"] for r in chain if r["kind"] == "config"]
    assert {c["config"]["worker"] for c in configs} == set(range(WRITERS))
    # (exactly one config record per deployment: test_a_deployment_config_is_audited_once)
    assert len(chain) - len(configs) == total_runs * per_run
    for run_id in expected:
        kinds = Counter(k for k, _ in payloads(store, run_id))
        assert kinds == {"run.started": 1, "order.submitted": ORDERS_EACH,
                         "operator.note": AUDITS_EACH, "run.finished": 1}  # fmt: skip
    report = store.audit_verify()
    assert report.ok, report.problems
    assert report.records == len(chain)
    assert [r["seq"] for r in chain] == list(range(1, len(chain) + 1))
    if store.dialect == "postgresql":
        # The writers really overlapped: their records interleave in the chain (PostgreSQL
        # queues the advisory lock fairly; SQLite's busy handler polls, so one writer may run
        # all its transactions while the other waits — slower, but nothing is lost).
        owners = [r["run_id"][:2] for r in chain if r["run_id"]]
        switches = sum(a != b for a, b in itertools.pairwise(owners))
        assert switches >= 2, owners


def test_a_sqlite_reader_does_not_block_writers(sqlite_url: str) -> None:
    """WAL mode lets readers and one writer proceed together: a `tradeloom runs list` or an
    audit verify must not stall a live session's write-ahead journal."""
    writer, reader = Store(sqlite_url), Store(sqlite_url)
    try:
        for i in range(3):
            writer.audit("operator.note", {"i": i})
        rows = reader._audit_rows()  # a verify, part-way through the log
        assert next(rows)[0] == 1
        done = threading.Event()

        def write() -> None:
            writer.audit("operator.note", {"i": 3})
            done.set()

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        finished_alongside = done.wait(1.5)
        rows.close()  # the reader is done: the writer gets through now in any case
        thread.join(70)
        assert done.is_set()
        assert writer.audit_verify().records == 4
        assert finished_alongside, "the writer waited for the reader"
    finally:
        writer.close()
        reader.close()


# --- prune and export ----------------------------------------------------------------------------


def test_prune_removes_old_runs_but_keeps_the_audit_log(open_store: Callable[..., Store]) -> None:
    store = open_store()
    for run_id, status in [("old-a", "finished"), ("old-b", "failed"), ("old-live", None),
                           ("new-c", "finished")]:  # fmt: skip
        store.begin_run(run_id, "paper", {"n": 1}, PROVENANCE, run_id)
        order = Order(f"{run_id}-o", "IBM", Side.SELL, 2.0, strategy_id="s")
        store.journal_order(run_id, order)
        store.journal_fill(
            run_id,
            Fill(f"{run_id}-f", order.client_order_id, "IBM", Side.SELL, 2.0, 50.0, 0.0, 5, "s"),
        )
        if status is not None:
            store.finish_run(run_id, status)
    with store.engine.begin() as conn:  # backdate three of them (one still running)
        for table, row in [("positions", {"symbol": "IBM", "quantity": -2.0, "avg_price": 50.0}),
                           ("equity", {"cash": 1.0, "position_value": 2.0, "equity": 3.0}),
                           ("risk_events", {"kind": "reject", "scope": "global", "state": "",
                                            "rule": "r", "reason": "x", "client_order_id": "",
                                            "by": "rule"})]:  # fmt: skip
            for run_id in ("old-a", "old-b", "old-live", "new-c"):
                conn.execute(sa.table(table, *[sa.column(c) for c in ["run_id", "ts", *row]])
                             .insert().values(run_id=run_id, ts=7, **row))  # fmt: skip
        conn.execute(
            sa.text("UPDATE runs SET started_at = :t WHERE id IN ('old-a', 'old-b', 'old-live')"),
            {"t": "2001-02-03T04:05:06.000000+00:00"},
        )
    audit_before = rows_of(store, "audit_log", "seq")

    assert sorted(store.prune(timedelta(days=30), dry_run=True)) == ["old-a", "old-b"]
    assert count(store, "runs") == 4 and rows_of(store, "audit_log", "seq") == audit_before

    assert sorted(store.prune(timedelta(days=30))) == ["old-a", "old-b"]
    assert sorted(r.id for r in store.runs()) == ["new-c", "old-live"]
    for table in ("orders", "fills", "positions", "equity", "risk_events"):
        for run_id in ("old-a", "old-b"):
            assert count(store, table, run_id) == 0, (table, run_id)
        assert count(store, table, "new-c") == 1 and count(store, table, "old-live") == 1
    with pytest.raises(StoreError, match="no run 'old-a'"):
        store.run("old-a")
    audit_after = rows_of(store, "audit_log", "seq")
    assert audit_after[: len(audit_before)] == audit_before  # nothing removed or changed
    (pruned,) = audit_after[len(audit_before) :]
    record = json.loads(pruned["record"])
    assert (pruned["kind"], pruned["run_id"]) == ("runs.pruned", None)
    assert sorted(record["payload"]["runs"]) == ["old-a", "old-b"]
    assert record["payload"]["older_than"] == str(timedelta(days=30))
    report = store.audit_verify()
    assert report.ok and report.records == len(audit_before) + 1
    assert store.prune(timedelta(days=30)) == []  # nothing left to prune: no record either
    assert count(store, "audit_log") == len(audit_before) + 1


def test_export_writes_every_table(open_store: Callable[..., Store], tmp_path: Path) -> None:
    store = open_store()
    result = run_example(store, "risk-controls.toml")
    run_id = result.run_id
    expected = {name: store.table(name, run_id) for name in
                ("orders", "fills", "positions", "risk_events", "audit")}  # fmt: skip
    assert [len(expected[n]) for n in ("fills", "risk_events", "audit")] == [19, 104, 3]
    for fmt in ("csv", "jsonl"):
        written = store.export(run_id[:6], fmt, tmp_path / fmt)  # a prefix is enough
        assert set(written) == {*expected, "run"}
        for name, rows in expected.items():
            text = written[name].read_text(encoding="utf-8")
            if fmt == "csv":
                with written[name].open(encoding="utf-8", newline="") as fh:
                    got = list(csv.DictReader(fh))
                assert len(got) == len(rows), name
                assert [g["id" if name != "audit" else "seq"] for g in got] == [
                    str(r["id" if name != "audit" else "seq"]) for r in rows
                ]
            else:
                got = [json.loads(line) for line in text.splitlines()]
                assert got == [json.loads(json.dumps(r)) for r in rows], name
        run = json.loads(written["run"].read_text(encoding="utf-8"))
        assert (run["id"], run["status"], run["config_hash"]) == (
            run_id, "finished", result.provenance["config_hash"],
        )  # fmt: skip
    fills_csv = list(csv.DictReader((tmp_path / "csv" / "fills.csv").open(encoding="utf-8")))
    assert [float(f["price"]) for f in fills_csv] == list(result.fills["price"])
    with pytest.raises(StoreError, match="unknown export format"):
        store.export(run_id, "xml", tmp_path / "x")


# --- bad URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://x", "only SQLite (sqlite:///...) and PostgreSQL"),
        ("mysql://user:s3cret@db.example/prod", "only SQLite (sqlite:///...) and PostgreSQL"),
        ("not a url", "is not a database URL"),
        ("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test", "Connection refused"),
        ("postgresql+psycopg//user:s3cret@127.0.0.1:5432/test", "is not a database URL"),
        ("postgresql+psycopg://user:s3cret@127.0.0.1:port/test", "store"),
        ("postgresql+psycopg2://user:s3cret@127.0.0.1:1/test", "store"),
    ],
)
def test_bad_urls_give_a_clear_store_error_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(StoreError) as info:
        Store(url)
    message = str(info.value)
    assert expected in message
    assert "s3cret" not in message
    assert "\n" not in message.strip()
    assert info.value.exit_code == 2


# --- provenance ----------------------------------------------------------------------------------


def _fake_git(root: Path, sha: str, *, packed: bool = False, detached: bool = False) -> Path:
    git = root / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    if detached:
        (git / "HEAD").write_text(sha + "\n")
    else:
        (git / "HEAD").write_text("ref: refs/heads/main\n")
        if packed:
            (git / "packed-refs").write_text(
                f"# pack-refs with: peeled fully-peeled sorted\n{'f' * 40} refs/heads/other\n"
                f"{sha} refs/heads/main\n^{'e' * 40}\n"
            )
        else:
            (git / "refs" / "heads" / "main").write_text(sha + "\n")
    return git


def test_source_hash_follows_the_files_and_nothing_else(tmp_path: Path) -> None:
    from tradeloom.provenance import hash_sources

    pkg = tmp_path / "mypkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "sub" / "m.py").write_text("Y = 2\n")
    (pkg / "data.txt").write_text("not code")
    expected = hashlib.sha256(b"__init__.py\0X = 1\n\0" + b"sub/m.py\0Y = 2\n\0").hexdigest()
    assert hash_sources(pkg) == (expected, 2)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.py").write_text("cached")
    (pkg / "data.txt").write_text("changed, still not code")
    assert hash_sources(pkg) == (expected, 2)
    seen = {expected}
    for change in (
        lambda: (pkg / "sub" / "m.py").write_text("Y = 3\n"),  # edit
        lambda: (pkg / "sub" / "m.py").rename(pkg / "sub" / "n.py"),  # rename
        lambda: (pkg / "extra.py").write_text(""),  # add an empty file
    ):
        change()
        digest, _ = hash_sources(pkg)
        assert digest not in seen
        seen.add(digest)
    module = tmp_path / "single.py"
    module.write_text("Z = 3\n")
    assert hash_sources(module) == (hashlib.sha256(b"single.py\0Z = 3\n\0").hexdigest(), 1)


@pytest.mark.parametrize("layout", ["loose", "packed", "detached", "worktree"])
def test_git_commit_is_read_without_git(tmp_path: Path, layout: str) -> None:
    from tradeloom.provenance import git_commit

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "repo"
    git = _fake_git(repo, sha, packed=layout == "packed", detached=layout == "detached")
    checkout = repo
    if layout == "worktree":  # .git is a file; the branch lives in the main repository
        (git / "HEAD").write_text("ref: refs/heads/other\n")
        (git / "refs" / "heads" / "feature").write_text(sha + "\n")
        wt = git / "worktrees" / "wt"
        wt.mkdir(parents=True)
        (wt / "HEAD").write_text("ref: refs/heads/feature\n")
        (wt / "commondir").write_text("../..\n")
        checkout = tmp_path / "wt"
        checkout.mkdir()
        (checkout / ".git").write_text(f"gitdir: {os.path.relpath(wt, checkout)}\n")
    package = checkout / "src" / "pkg"
    package.mkdir(parents=True)
    assert git_commit(package) == sha
    assert git_commit(tmp_path / "elsewhere") is None


def test_this_checkouts_commit_is_recorded() -> None:
    import tradeloom_strategies
    from tradeloom.provenance import strategy_code

    git = shutil.which("git")
    if git is None:
        pytest.skip("no git binary to compare with")
    root = Path(tradeloom_strategies.__file__).parent
    head = subprocess.run(
        [git, "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    if head.returncode != 0:
        pytest.skip("the strategies package is not in a git checkout")
    from tradeloom_strategies.sma_crossover import SmaCrossover

    code = strategy_code([SmaCrossover])
    assert code["git_commit"] == head.stdout.strip()
    assert (
        code["code"]["tradeloom_strategies.sma_crossover.SmaCrossover"]["git_commit"]
        == code["git_commit"]
    )


def test_an_installed_wheel_has_no_git_commit(tmp_path: Path) -> None:
    from tradeloom.provenance import git_commit

    _fake_git(tmp_path / "project", "a" * 40)
    site = tmp_path / "project" / ".venv" / "lib" / "python3.11" / "site-packages" / "thirdparty"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    assert git_commit(site) is None


def test_the_revisions_the_store_knows_are_the_migration_scripts() -> None:
    """Opening a store compares its revision with REVISIONS without loading alembic; the
    list must be exactly the scripts alembic would run, in order."""
    from tradeloom.store.migrate import REVISIONS, script_revisions

    assert list(REVISIONS) == script_revisions()
