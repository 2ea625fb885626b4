"""``tradeloom run``, ``status``, ``kill`` and ``resume``: paper sessions and their operator."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tradeloom.errors import ConfigError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SessionName = Annotated[
    str | None,
    typer.Option("--session", help="Session name (default: the last config file's stem)."),
]
SessionsDir = Annotated[
    Path | None,
    typer.Option(
        "--sessions-dir",
        help="Where sessions live (default TRADELOOM_SESSIONS or .tradeloom/sessions).",
    ),
]


def run_command(
    files: Annotated[list[Path], typer.Argument(help="Deployment config files, merged in order.")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one value, e.g. --set run.end=2012-01-01."),
    ] = None,
    session: SessionName = None,
    sessions_dir: SessionsDir = None,
    store: Annotated[str | None, typer.Option("--store", help="Journal database URL.")] = None,
    live: Annotated[
        bool, typer.Option("--live", help='Confirm a mode = "live" session (real money).')
    ] = False,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox/--no-sandbox",
            help="Run each strategy in its own isolated process (default on).",
        ),
    ] = True,
    cancel_on_stop: Annotated[
        bool,
        typer.Option("--cancel-on-stop", help="Cancel working orders when the session stops."),
    ] = False,
    on_fault: Annotated[
        str,
        typer.Option(
            "--on-fault",
            help="When a sandboxed strategy faults: halt it; cancel (halt and cancel its "
            "working orders); flatten (also close its positions).",
        ),
    ] = "cancel",
    stale_after: Annotated[
        float | None,
        typer.Option(
            "--stale-after",
            help="Mark an instrument reducing-only when its feed is silent this many (market) "
            "seconds.",
        ),
    ] = None,
) -> None:
    """Run a paper (or, with --live, live) session of a deployment: real-time or replayed bars,
    the strategies sandboxed, every order journaled before it is sent. Ctrl-C or SIGTERM stops
    it; running it again with the same --session resumes where it stopped."""
    from loguru import logger

    from tradeloom.config import load_deployment
    from tradeloom.live.runner import PaperRunner
    from tradeloom.live.session import Session
    from tradeloom.plugins import PluginHost
    from tradeloom.store import Store

    if not files:
        raise ConfigError("give at least one deployment config file")
    host = PluginHost()
    resolved = load_deployment(files, overrides or [], host=host)
    name = session or files[-1].stem
    sess = Session.open(name, sessions_dir)
    sess.root.mkdir(parents=True, exist_ok=True)
    # Structured JSON lines (with the run id) in the session folder; warnings (halts, kills,
    # alerts) also on stderr, tidy.
    logger.enable("tradeloom")
    sink = logger.add(sess.root / "log.jsonl", serialize=True, level="INFO")
    with contextlib.suppress(ValueError):
        logger.remove(0)  # loguru's default DEBUG handler
    console = logger.add(
        sys.stderr, level="WARNING", format="<yellow>{level}</yellow> {message}", colorize=False
    )
    db = Store(store or resolved.store_url)
    try:
        runner = PaperRunner(
            resolved, session=sess, store=db, host=host, live=live, sandbox=sandbox,
            cancel_on_stop=cancel_on_stop, stale_after=stale_after,
            on_fault=on_fault,  # type: ignore[arg-type]
        )  # fmt: skip
        err.print(
            f"session [bold]{name}[/bold] in {sess.root}: running (Ctrl-C to stop; "
            f"`tradeloom status --session {name}` from another terminal)"
        )
        summary = runner.run()
    finally:
        logger.remove(sink)
        logger.remove(console)
        logger.disable("tradeloom")
        db.close()
    table = Table(title=f"tradeloom session {summary.session}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for label, value in (
        ("run id", summary.run_id),
        ("status", summary.status),
        ("restarted", "yes" if summary.restarted else "no"),
        ("steps / bars", f"{summary.steps:,} / {summary.bars:,}"),
        ("late batches", f"{summary.late_batches:,}"),
        ("orders / fills", f"{summary.orders:,} / {summary.fills:,}"),
        ("equity", f"{summary.equity:,.2f}"),
        ("positions", ", ".join(f"{s} {q:g}" for s, q in summary.positions.items()) or "flat"),
    ):
        table.add_row(label, value)
    out.print(table)
    if summary.late_batches:
        err.print(
            f"[yellow]{summary.late_batches} bar batches arrived while the strategies were still "
            "busy with earlier ones: they were handled late (none skipped); lower the replay "
            "speed for timely decisions[/yellow]"
        )


def status_command(
    session: Annotated[str, typer.Option("--session", help="Session name.")],
    sessions_dir: SessionsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What a session is doing: runner alive, trading states, strategies, positions, working
    orders, PnL, data age, sandbox."""
    from tradeloom.live.session import Session, read_json

    sess = Session.open(session, sessions_dir)
    if not sess.root.exists():
        raise ConfigError(f"no session {session!r} in {sess.root.parent}", path="--session")
    status = read_json(sess.status_file) or {}
    pid = sess.runner_pid()
    status["runner"] = f"running (pid {pid})" if pid else "not running"
    states = read_json(sess.state_file) or {}
    status["persisted_states"] = {
        k: v.get("state") for k, v in (states.get("states") or {}).items()
    }
    if as_json:
        sys.stdout.write(json.dumps(status, indent=2, sort_keys=True, default=str) + "\n")
        return
    table = Table(title=f"session {session}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key in (
        "runner", "run_id", "mode", "status", "last_bar", "data_age_seconds", "steps", "bars",
        "late_batches", "cash", "equity", "pnl", "sandbox",
    ):  # fmt: skip
        if key in status:
            value = status[key]
            table.add_row(
                key.replace("_", " "), f"{value:,.2f}" if isinstance(value, float) else str(value)
            )
    table.add_row(
        "trading states",
        ", ".join(f"{k}: {v}" for k, v in status["persisted_states"].items()) or "all active",
    )
    table.add_row(
        "strategies", ", ".join(f"{k}: {v}" for k, v in (status.get("strategies") or {}).items())
    )
    table.add_row(
        "positions",
        ", ".join(f"{k} {v:g}" for k, v in (status.get("positions") or {}).items()) or "flat",
    )
    working = status.get("working_orders") or []
    table.add_row("working orders", str(len(working)))
    out.print(table)


def kill_command(
    session: Annotated[str, typer.Option("--session", help="Session name.")],
    sessions_dir: SessionsDir = None,
    flatten: Annotated[bool, typer.Option("--flatten", help="Also close every position.")] = False,
    reason: Annotated[
        str, typer.Option("--reason", help="Why (recorded).")
    ] = "operator kill switch",
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the runner to confirm.")
    ] = 5.0,
) -> None:
    """The kill switch: halt the session (persisted), cancel every working order, refuse new
    ones; only `tradeloom resume` lifts it. Works whether or not the runner is running."""
    from tradeloom.live.session import Session
    from tradeloom.risk.control import RiskControl

    sess = Session.open(session, sessions_dir)
    if not sess.root.exists():
        raise ConfigError(f"no session {session!r} in {sess.root.parent}", path="--session")
    path = sess.command("kill", reason=reason, flatten=flatten)
    pid = sess.runner_pid()
    if pid is None:
        # No runner: persist HALTED now; the working orders are canceled when it restarts.
        control = RiskControl([], state_file=sess.state_file)
        control.request_kill(reason, flatten=flatten, ts=time.time_ns())  # when, for the record
        out.print(
            f"session {session}: HALTED (no runner is running; working orders are canceled at "
            "its restart)"
        )
        return
    deadline = time.monotonic() + wait
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if path.exists():
        out.print(
            f"session {session}: kill requested; the runner (pid {pid}) has not confirmed yet"
        )
    else:
        out.print(f"session {session}: HALTED by the kill switch; working orders canceled")


def resume_command(
    session: Annotated[str, typer.Option("--session", help="Session name.")],
    sessions_dir: SessionsDir = None,
    scope: Annotated[
        str, typer.Option("--scope", help="global, strategy:ID or instrument:SYMBOL.")
    ] = "global",
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "operator resume",
) -> None:
    """Lift a halt (the operator's action): the scope trades again."""
    from tradeloom.live.session import Session
    from tradeloom.risk.control import RiskControl, Scope

    Scope.parse(scope)  # a bad scope is one clear error
    sess = Session.open(session, sessions_dir)
    if not sess.root.exists():
        raise ConfigError(f"no session {session!r} in {sess.root.parent}", path="--session")
    if sess.runner_pid() is None:
        control = RiskControl([], state_file=sess.state_file)
        control.resume(scope, reason)
        out.print(f"session {session}: {scope} active again")
        return
    sess.command("resume", scope=scope, reason=reason)
    out.print(f"session {session}: resume of {scope} sent to the runner")
