"""``tradeloom db``, ``tradeloom audit`` and ``tradeloom runs``: the journal store from the
command line (see docs/store.md).

Mounted on the main command with ``app.add_typer(...)``. Errors are not handled here: a
:class:`~tradeloom.errors.TradeloomError` propagates to the main command, which prints one
``error: ...`` line and exits with its code — 2 for a store that cannot be used (bad URL,
unreachable, another schema revision: :class:`~tradeloom.store.db.StoreError`) or a bad option
(:class:`~tradeloom.errors.ConfigError`), 1 when the audit log fails verification.

Every command takes ``--store URL`` (default: ``TRADELOOM_STORE``, else
``sqlite:///tradeloom.db``). ``db current`` and ``db upgrade`` open the store without the
schema check; every other command refuses a store at another schema revision.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tradeloom.errors import ConfigError, TradeloomError

if TYPE_CHECKING:
    from tradeloom.store.db import RunComparison, Store

__all__ = ["AuditFailure", "audit_app", "db_app", "parse_duration", "runs_app"]

db_app = typer.Typer(
    help="The journal database's schema: its revision and migrations.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The tamper-evident audit log: verify the hash chain, print its head.",
    no_args_is_help=True,
)
runs_app = typer.Typer(
    help="Journaled runs: list, show, compare, export and prune them.", no_args_is_help=True
)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="Journal database URL (default: TRADELOOM_STORE, else sqlite:///tradeloom.db).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]
RunIdArg = Annotated[
    str, typer.Argument(help="A run id, or a unique prefix of one.", show_default=False)
]

RUN_STATUSES = ("running", "finished", "failed")
"""The statuses a run can have (``runs list --status``)."""

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")

_PERCENT = {
    "total_return", "cagr", "annual_volatility", "max_drawdown", "win_rate",
    "avg_trade_return", "exposure", "benchmark_return", "alpha",
}  # fmt: skip
"""Metrics that are fractions, shown as percentages (differences in percentage points)."""


class AuditFailure(TradeloomError):
    """The audit log failed verification: a record was edited, removed or reordered, or the
    log no longer contains the anchored record. Exit code 1 (a finding, not a usage error)."""

    exit_code = 1


# --- helpers -----------------------------------------------------------------------------------
def _out() -> Console:
    """stdout; wide enough when piped that ids and hashes are never cut."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=max(console.width, 160))
    return console


def _write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


@contextmanager
def _opened(url: str | None, *, check: bool = True) -> Iterator[Store]:
    """The store at ``url`` (default: TRADELOOM_STORE, else sqlite:///tradeloom.db); every
    database failure becomes one StoreError naming the store and what to check."""
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from tradeloom.store.db import Store, StoreError, default_url, display_url

    url = url or default_url()
    shown = display_url(url)
    store: Store | None = None
    try:
        store = Store(url, check=check)
        yield store
    except StoreError as exc:
        if isinstance(exc.__cause__, OperationalError):  # could not connect or read
            raise StoreError(f"{exc}; {_reach_hint(url, str(exc))}") from exc
        raise
    except SQLAlchemyError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(
            f"store {shown}: {first}; check that --store (or TRADELOOM_STORE) names a tradeloom "
            "journal database"
        ) from exc
    except OSError as exc:  # the SQLite file's folder cannot be created
        raise StoreError(
            f"store {shown}: cannot use the database file ({exc.strerror or exc}: "
            f"{exc.filename or '?'}); give --store sqlite:///path/to/tradeloom.db in a folder "
            "you can write to"
        ) from exc
    finally:
        if store is not None:
            store.close()


def _reach_hint(url: str, message: str) -> str:
    if "locked" in message:
        return "another process holds the database's write lock; retry when it is done"
    if url.startswith("postgresql"):
        return (
            "check that the PostgreSQL server is running and reachable and that the URL's host, "
            "port, database, user and password are right (--store or TRADELOOM_STORE)"
        )
    return "check the database file's path and permissions (--store or TRADELOOM_STORE)"


def _resolve(store: Store, run_id: str) -> dict[str, Any]:
    """The run ``run_id`` names (a unique prefix is enough), with its config."""
    from tradeloom.store.db import StoreError, display_url

    wanted = run_id.strip()
    if not wanted:
        raise ConfigError("give a run id (or a unique prefix of one); see `tradeloom runs list`")
    run = store.run(wanted)
    if not str(run["id"]).lower().startswith(wanted.lower()):  # LIKE wildcards in the prefix
        raise StoreError(
            f"no run {wanted!r} in {display_url(store.url)}; see `tradeloom runs list`"
        )
    return run


def _counts(store: Store, run_id: str) -> dict[str, Any]:
    """How many orders (distinct), order states, fills, positions, equity snapshots, risk
    events (by kind) and audit records a run has."""
    from sqlalchemy import func, select

    from tradeloom.store.models import (
        AuditRow,
        EquityRow,
        FillRow,
        OrderRow,
        PositionRow,
        RiskEventRow,
    )

    def count(model: Any) -> int:
        return int(conn.execute(select(func.count()).where(model.run_id == run_id)).scalar() or 0)

    with store.engine.connect() as conn:
        orders = conn.execute(
            select(func.count(func.distinct(OrderRow.client_order_id))).where(
                OrderRow.run_id == run_id
            )
        ).scalar()
        by_kind = conn.execute(
            select(RiskEventRow.kind, func.count())
            .where(RiskEventRow.run_id == run_id)
            .group_by(RiskEventRow.kind)
            .order_by(RiskEventRow.kind)
        ).all()
        return {
            "orders": int(orders or 0),
            "order_states": count(OrderRow),
            "fills": count(FillRow),
            "positions": count(PositionRow),
            "equity_snapshots": count(EquityRow),
            "risk_events": sum(int(n) for _, n in by_kind),
            "risk_events_by_kind": {str(k): int(n) for k, n in by_kind},
            "audit_records": count(AuditRow),
        }


def _time(iso: str | None) -> str:
    """``2026-01-02T03:04:05.678+00:00`` -> ``2026-01-02 03:04:05``."""
    if not iso:
        return "—"
    return iso.replace("T", " ")[:19]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:,.2f}%"


def _value(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(str(value))
    if name in _PERCENT:
        return _pct(float(value))
    return _number(value)


def _number(value: float, sign: str = "") -> str:
    """Integers with thousands separators; floats to 6 significant digits (money-sized ones
    to cents)."""
    if isinstance(value, int):
        return f"{value:{sign},}"
    return f"{value:{sign},.2f}" if abs(value) >= 1000 else f"{value:{sign}.6g}"


def _difference(name: str, a: Any, b: Any) -> tuple[str, Any]:
    """``b - a`` for two numbers (shown, raw); ``same`` / ``differs`` otherwise."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numbers:
        return ("same", None) if a == b else ("differs", None)
    diff = b - a
    if name in _PERCENT:
        return f"{diff * 100:+,.2f} pp", diff
    return _number(diff, "+"), diff


def _drop_none(value: Any) -> Any:
    """TOML has no null: drop ``None`` values (lists keep their length with ``""``)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [("" if v is None else _drop_none(v)) for v in value]
    return value


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` (or ``45s``) as a timedelta; ConfigError otherwise."""
    match = _DURATION.match(text or "")
    if match is None:
        raise ConfigError(
            f"--older-than {text!r} is not a duration; use a number and a unit, e.g. 30d, 12h, "
            "90m or 2w (s seconds, m minutes, h hours, d days, w weeks)"
        )
    amount, unit = float(match.group(1)), match.group(2)
    return timedelta(**{_UNITS[unit]: amount})


# --- tradeloom db ------------------------------------------------------------------------------
@db_app.command("current")
def db_current(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Print the store's schema revision and the latest one this tradeloom knows."""
    from tradeloom.store.db import display_url
    from tradeloom.store.migrate import known_revisions

    with _opened(store, check=False) as db:
        current, head = db.current(), db.head()
        shown = display_url(db.url)
    if current == head:
        state, action = "up to date", None
    elif current is None:
        state = "no schema yet (a new database)"
        action = f"tradeloom creates it on first use; or run `tradeloom db upgrade --store {shown}`"
    elif current in known_revisions():
        state = "out of date"
        action = f"run `tradeloom db upgrade --store {shown}`"
    else:
        state = "written by a newer tradeloom"
        action = "upgrade tradeloom, or point --store at another database"
    if as_json:
        _write_json({
            "store": shown, "revision": current, "head": head, "up_to_date": current == head,
            "state": state, "action": action,
        })  # fmt: skip
        return
    out = _out()
    out.print(f"store     {escape(shown)}")
    out.print(f"revision  {current or '(none)'}")
    out.print(f"head      {head}")
    if action is None:
        out.print("[green]up to date[/green]")
    else:
        out.print(f"[yellow]{state}[/yellow]: {escape(action)}")


@db_app.command("upgrade")
def db_upgrade(
    store: StoreOpt = None,
    revision: Annotated[
        str,
        typer.Option("--revision", metavar="REV", help="Migrate to this revision (default: head)."),
    ] = "head",
) -> None:
    """Migrate the store's schema to the latest revision (or --revision REV); never down."""
    from alembic.util.exc import CommandError

    from tradeloom.store.db import StoreError, display_url
    from tradeloom.store.migrate import known_revisions, table_names

    known = known_revisions()
    if revision != "head" and revision not in known:
        raise ConfigError(
            f"--revision {revision!r} is not a schema revision this tradeloom knows; use one of "
            f"{', '.join(known)} or head"
        )
    with _opened(store, check=False) as db:
        shown = display_url(db.url)
        before = db.current()
        target = db.head() if revision == "head" else revision
        if before is not None and before not in known:
            raise StoreError(
                f"store {shown} is at schema revision {before}, which this tradeloom does not "
                f"know (its latest is {db.head()}): it was written by a newer tradeloom; upgrade "
                "tradeloom instead"
            )
        if before is None:
            with db.engine.connect() as conn:
                ours = {"runs", "audit_log"} & set(table_names(conn))
            if ours:
                raise StoreError(
                    f"store {shown} has journal tables but no schema revision; it was not made "
                    "by `tradeloom db upgrade`: point --store at another database"
                )
        if before is not None and known.index(target) < known.index(before):
            raise ConfigError(
                f"--revision {target} is older than the store's revision {before}: "
                "`tradeloom db upgrade` does not downgrade"
            )
        try:
            after = db.upgrade(target)
        except CommandError as exc:
            raise StoreError(f"store {shown}: migration failed: {exc}") from exc
        if after != before:
            db.audit("db.upgraded", {"from": before, "to": after})
    out = _out()
    if after == before:
        out.print(f"{escape(shown)}: already at revision {after}; nothing to do")
    else:
        out.print(f"{escape(shown)}: upgraded {before or '(empty)'} -> {after}")


# --- tradeloom audit ---------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(
    store: StoreOpt = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HASH",
            help="A head recorded earlier (`tradeloom audit head`): also detects truncation "
            "and a rewritten chain.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the audit log's hash chain; exit 1 when it was tampered with.

    Finds records edited, removed or reordered; with --anchor also a log truncated or rewritten
    after the anchor was taken."""
    from tradeloom.store.audit import Anchor
    from tradeloom.store.db import display_url

    pinned = None
    if anchor is not None:
        try:
            pinned = Anchor.parse(anchor)
        except ValueError as exc:
            raise ConfigError(f"--anchor: {exc}") from None
    with _opened(store) as db:
        report = db.audit_verify(pinned)
        shown = display_url(db.url)
    if as_json:
        _write_json({
            "store": shown, "records": report.records,
            "head": None if report.head is None else str(report.head),
            "anchor": None if pinned is None else str(pinned),
            "ok": report.ok, "problems": report.problems,
        })  # fmt: skip
    else:
        out = _out()
        out.print(f"store    {escape(shown)}")
        out.print(f"records  {report.records:,} checked")
        out.print(f"head     {report.head or '(empty log)'}")
        if pinned is not None:
            out.print(f"anchor   {pinned}")
        for problem in report.problems:
            out.print(f"[red]{escape(problem)}[/red]", soft_wrap=True)
        if report.ok:
            out.print("[bold green]OK[/bold green]: the chain is intact", end="")
            if pinned is not None:
                out.print(f" and contains the anchored record {pinned.seq}")
            else:
                out.print(
                    " (records removed from the end or a rewritten chain need --anchor to be "
                    "detected)",
                    soft_wrap=True,
                )
    if not report.ok:
        n = len(report.problems)
        raise AuditFailure(
            f"the audit log of {shown} failed verification: {n} problem{'s' * (n != 1)}, the "
            f"first: {report.problems[0]}"
        )


@audit_app.command("head")
def audit_head(store: StoreOpt = None) -> None:
    """Print the audit log's head as SEQ:HASH (alone, to pipe it somewhere you keep anchors)."""
    from tradeloom.store.db import display_url

    with _opened(store) as db:
        head = db.audit_head()
        shown = display_url(db.url)
    if head is None:
        raise AuditFailure(
            f"the audit log of {shown} is empty: there is no head to anchor yet; run a backtest "
            "(or check --store)"
        )
    sys.stdout.write(f"{head}\n")


# --- tradeloom runs ----------------------------------------------------------------------------
@runs_app.command("list")
def runs_list(
    store: StoreOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Show the latest N runs (0: all).")
    ] = 50,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs with this status: running, finished or failed."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The journaled runs, latest first."""
    from tradeloom.store.db import display_url

    if status is not None and status not in RUN_STATUSES:
        raise ConfigError(f"--status {status!r}: use one of {', '.join(RUN_STATUSES)}")
    with _opened(store) as db:
        runs = db.runs(limit=limit or None, status=status)
        shown = display_url(db.url)
    if as_json:
        _write_json([asdict(r) for r in runs])
        return
    out = _out()
    if not runs:
        which = f"{status} runs" if status else "runs"
        out.print(f"no {which} in {escape(shown)}")
        return
    table = Table(title=f"runs in {escape(shown)}", box=box.SIMPLE_HEAD)
    table.add_column("id", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("title", overflow="fold")
    table.add_column("total return", justify="right", no_wrap=True)
    table.add_column("orders", justify="right", no_wrap=True)
    table.add_column("fills", justify="right", no_wrap=True)
    styles = {"finished": "green", "failed": "red", "running": "yellow"}
    for r in runs:
        style = styles.get(r.status, "")
        table.add_row(
            r.id, _time(r.started_at), r.mode,
            f"[{style}]{escape(r.status)}[/{style}]" if style else escape(r.status),
            escape(r.title), _pct(r.total_return), f"{r.orders:,}", f"{r.fills:,}",
        )  # fmt: skip
    out.print(table)
    if limit and len(runs) == limit:
        out.print(f"the latest {limit} runs; --limit N for more (0: all)")


@runs_app.command("show")
def runs_show(run_id: RunIdArg, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """A run's provenance, metrics, order/fill/risk-event counts and config."""
    import tomli_w

    with _opened(store) as db:
        run = _resolve(db, run_id)
        counts = _counts(db, run["id"])
    if as_json:
        _write_json({**run, "counts": counts})
        return
    out = _out()
    head = Table(title=f"run {run['id']}", show_header=False, box=box.SIMPLE)
    head.add_column("field", style="bold", no_wrap=True)
    head.add_column("value", overflow="fold")
    head.add_row("title", escape(run["title"] or "—"))
    head.add_row("mode", escape(run["mode"]))
    head.add_row("status", escape(run["status"]))
    head.add_row("started (UTC)", _time(run["started_at"]))
    head.add_row("finished (UTC)", _time(run["finished_at"]))
    if run.get("error"):
        head.add_row("error", f"[red]{escape(run['error'])}[/red]")
    if run.get("out_dir"):
        head.add_row("output folder", escape(run["out_dir"]))
    out.print(head)

    prov = Table(title="provenance", show_header=False, box=box.SIMPLE)
    prov.add_column("field", style="bold", no_wrap=True)
    prov.add_column("value", overflow="fold")
    prov.add_row("framework version", escape(run["framework_version"] or "—"))
    prov.add_row("plugins", escape(", ".join(run["plugins"] or []) or "—"))
    prov.add_row("code hash", run["code_hash"] or "—")
    for cls, info in sorted((run.get("code") or {}).items()):
        info = info or {}
        files = info.get("files", 0)
        detail = (
            f"sha256 {info.get('sha256') or '—'}\n"
            f"{files} file{'s' * (files != 1)} in {escape(str(info.get('package') or '—'))}, "
            f"git commit {info.get('git_commit') or '— (not a git checkout)'}"
        )
        prov.add_row(f"  {escape(cls)}", detail)
    prov.add_row("git commit", run.get("git_commit") or "— (not a git checkout)")
    prov.add_row("config hash", run["config_hash"] or "—")
    prov.add_row("data fingerprint", run["data_fingerprint"] or "—")
    out.print(prov)

    out.print(_metrics_table(run.get("metrics")))

    journal = Table(title="journal", show_header=False, box=box.SIMPLE)
    journal.add_column("table", style="bold", no_wrap=True)
    journal.add_column("rows", justify="right", no_wrap=True)
    journal.add_row("orders", f"{counts['orders']:,}")
    journal.add_row("order states", f"{counts['order_states']:,}")
    journal.add_row("fills", f"{counts['fills']:,}")
    journal.add_row("positions", f"{counts['positions']:,}")
    journal.add_row("equity snapshots", f"{counts['equity_snapshots']:,}")
    journal.add_row("risk events", f"{counts['risk_events']:,}")
    for kind, n in counts["risk_events_by_kind"].items():
        journal.add_row(f"  {escape(kind)}", f"{n:,}")
    journal.add_row("audit records", f"{counts['audit_records']:,}")
    out.print(journal)

    config = run.get("config")
    out.print("[bold]config[/bold] (secrets masked)")
    if config is None:
        out.print("— (not stored)")
    else:
        out.out(tomli_w.dumps(_drop_none(config)), highlight=False, end="")


def _metrics_table(metrics: dict[str, Any] | None) -> Table:
    table = Table(title="metrics", show_header=False, box=box.SIMPLE)
    table.add_column("metric", style="bold", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    if not metrics:
        table.add_row("—", "none recorded")
        return table
    try:
        from tradeloom.report.metrics import Metrics

        rows = Metrics.model_validate(metrics).display_rows()
    except Exception:  # metrics of another shape (a paper session): show them as stored
        rows = [(name, _value(name, value)) for name, value in sorted(metrics.items())]
    for label, value in rows:
        table.add_row(escape(label), value)
    return table


@runs_app.command("compare")
def runs_compare(
    run_a: Annotated[str, typer.Argument(metavar="A", help="The first run (id or prefix).")],
    run_b: Annotated[str, typer.Argument(metavar="B", help="The second run (id or prefix).")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Two runs side by side: metrics, and whether code, config, data or plugins differ.

    Metrics as a, b and b − a; then the code hash, config hash, data fingerprint, plugin and
    framework versions of both, the config values that changed and a one-line verdict."""
    with _opened(store) as db:
        ra, rb = _resolve(db, run_a), _resolve(db, run_b)
        cmp = db.compare(ra["id"], rb["id"])
    if as_json:
        _write_json(_comparison_json(cmp, ra, rb))
        return
    out = _out()
    for label, run in (("a", ra), ("b", rb)):
        out.print(
            f"[bold]{label}[/bold] = {run['id']}  {escape(run['title'] or '')}  "
            f"({run['mode']}, {escape(run['status'])}, started {_time(run['started_at'])})"
        )
    metrics = Table(title="metrics", box=box.SIMPLE_HEAD)
    metrics.add_column("metric", no_wrap=True)
    for column in ("a", "b", "b − a"):
        metrics.add_column(column, justify="right", no_wrap=True)
    for name, a, b in cmp.metrics:
        shown, _ = _difference(name, a, b)
        metrics.add_row(name, _value(name, a), _value(name, b), shown)
    if not cmp.metrics:
        metrics.add_row("—", "—", "—", "")
    out.print(metrics)

    verdict = Table(title="what the runs were made of", box=box.SIMPLE_HEAD)
    for column in ("", "a", "b", ""):
        verdict.add_column(column, no_wrap=True)
    rows = [
        ("code", ra["code_hash"], rb["code_hash"], cmp.code_differs),
        ("config", ra["config_hash"], rb["config_hash"], cmp.config_differs),
        ("data", ra["data_fingerprint"], rb["data_fingerprint"], cmp.data_differs),
        ("plugins", _plugins(ra), _plugins(rb), cmp.plugins_differ),
        ("framework", ra["framework_version"], rb["framework_version"], cmp.framework_differs),
    ]
    for aspect, a, b, differs in rows:
        verdict.add_row(
            aspect, _short(a), _short(b),
            "[red]differs[/red]" if differs else "[green]same[/green]",
        )  # fmt: skip
    out.print(verdict)
    if cmp.config_changes:
        out.print("[bold]config changes[/bold] (a -> b):")
        for path, a, b in cmp.config_changes:
            out.print(f"  {escape(path)}: {escape(repr(a))} -> {escape(repr(b))}", soft_wrap=True)
    if cmp.code_changes:
        out.print("[bold]strategy code that differs[/bold]:")
        for name in cmp.code_changes:
            out.print(f"  {escape(name)}")
    if cmp.plugin_changes:
        out.print("[bold]plugin versions in only one run[/bold]:")
        for entry in cmp.plugin_changes:
            where = "a" if entry in (ra["plugins"] or []) else "b"
            out.print(f"  {escape(entry)} (only {where})")
    line = cmp.summary()
    if cmp.framework_differs:
        line += (
            f"; the framework version differs ({ra['framework_version']} -> "
            f"{rb['framework_version']})"
        )
    out.print(f"[bold]verdict[/bold]: {escape(line)}", soft_wrap=True)


def _plugins(run: dict[str, Any]) -> str:
    return ", ".join(run["plugins"] or []) or "—"


def _short(value: str | None) -> str:
    """Hashes cut to 12 characters; other values as they are."""
    if not value:
        return "—"
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return escape(value)


def _comparison_json(cmp: RunComparison, ra: dict[str, Any], rb: dict[str, Any]) -> dict:
    return {
        "a": cmp.a,
        "b": cmp.b,
        "metrics": [
            {"name": n, "a": a, "b": b, "difference": _difference(n, a, b)[1]}
            for n, a, b in cmp.metrics
        ],
        "code_differs": cmp.code_differs,
        "config_differs": cmp.config_differs,
        "data_differs": cmp.data_differs,
        "plugins_differ": cmp.plugins_differ,
        "framework_differs": cmp.framework_differs,
        "config_changes": [{"path": p, "a": a, "b": b} for p, a, b in cmp.config_changes],
        "plugin_changes": cmp.plugin_changes,
        "code_changes": cmp.code_changes,
        "code_hash": [ra["code_hash"], rb["code_hash"]],
        "config_hash": [ra["config_hash"], rb["config_hash"]],
        "data_fingerprint": [ra["data_fingerprint"], rb["data_fingerprint"]],
        "summary": cmp.summary(),
    }


@runs_app.command("export")
def runs_export(
    run_id: RunIdArg,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Folder to write the files to (created).",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str, typer.Option("--format", metavar="csv|jsonl", help="csv or jsonl.")
    ] = "csv",
    store: StoreOpt = None,
) -> None:
    """Write a run's journal to files (CSV or JSON lines).

    orders (every state), fills, positions, risk_events and audit, plus the run's row
    (provenance, metrics) as run.json / run.jsonl."""
    if fmt not in ("csv", "jsonl"):
        raise ConfigError(f"--format {fmt!r}: use csv or jsonl")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: is a file; give a folder")
    with _opened(store) as db:
        run = _resolve(db, run_id)
        try:
            written = db.export(run["id"], fmt, out_dir)
        except OSError as exc:
            raise ConfigError(f"--out {out_dir}: cannot write there: {exc}") from exc
    out = _out()
    table = Table(title=f"run {run['id']} exported to {escape(str(out_dir))}", box=box.SIMPLE_HEAD)
    table.add_column("table", no_wrap=True)
    table.add_column("file", overflow="fold")
    table.add_column("rows", justify="right", no_wrap=True)
    for name, path in written.items():
        table.add_row(name, escape(str(path)), f"{_rows_in(path):,}")
    out.print(table)


def _rows_in(path: Path) -> int:
    """Records in an exported file (CSV: without the header)."""
    with path.open(encoding="utf-8", newline="") as fh:
        if path.suffix == ".csv":
            return max(sum(1 for _ in csv.reader(fh)) - 1, 0)
        return sum(1 for line in fh if line.strip())


@runs_app.command("prune")
def runs_prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Delete runs that started longer ago than this: 30d, 12h, 90m, 2w.",
            show_default=False,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the runs that would be deleted.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    store: StoreOpt = None,
) -> None:
    """Delete runs that started longer ago than --older-than.

    Their orders, fills, positions, equity and risk events go with them; running runs are kept.
    The audit log keeps their records and gains one naming the runs pruned."""
    from tradeloom.store.db import display_url

    age = parse_duration(older_than)
    out = _out()
    with _opened(store) as db:
        shown = display_url(db.url)
        candidates = db.prune(age, dry_run=True)
        if not candidates:
            out.print(f"no runs in {escape(shown)} started more than {older_than} ago")
            return
        n = len(candidates)
        if dry_run:
            out.print(f"would prune {n} run{'s' * (n != 1)} from {escape(shown)}:")
            for run_id in candidates:
                out.print(f"  {run_id}")
            return
        if not yes:
            out.print(f"{n} run{'s' * (n != 1)} in {escape(shown)} started more than "
                      f"{older_than} ago:")  # fmt: skip
            for run_id in candidates:
                out.print(f"  {run_id}")
            typer.confirm(
                f"Delete {'it' if n == 1 else 'them'} with their orders, fills, positions, "
                "equity and risk events?",
                abort=True,
            )
        pruned = db.prune(age, only=candidates)  # what was listed, nothing newer
    n = len(pruned)
    out.print(f"pruned {n} run{'s' * (n != 1)} from {escape(shown)}:")
    for run_id in pruned:
        out.print(f"  {run_id}")
