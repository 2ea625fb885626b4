"""The ``tradeloom`` command.

A user mistake prints one line ``error: ...`` on stderr and exits 2 (config or usage) or 1
(run failure), with no traceback; ``--debug`` (anywhere on the command line) shows it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tradeloom.cli.options import ConfigFiles, ExtraConfigs, Overrides
from tradeloom.errors import ConfigError, TradeloomError

app = typer.Typer(
    name="tradeloom",
    help="Take trading strategies from research to production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plugins_app = typer.Typer(help="Installed plugins and their components.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

OutDir = Annotated[Path | None, typer.Option("--out", help="Folder for the output files.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print metrics.json on stdout.")]
StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Journal database URL (wins over [store] url, then TRADELOOM_STORE, then "
        "sqlite:///tradeloom.db).",
    ),
]
NoJournal = Annotated[
    bool, typer.Option("--no-journal", help="Do not write the run to the journal database.")
]


def _version_callback(value: bool) -> None:
    if value:
        from tradeloom import __version__

        out.print(f"tradeloom {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True)
    ] = False,
) -> None:
    """Take trading strategies from research to production."""


def _attach_config_app() -> None:
    try:
        from tradeloom.cli.config_cmd import config_app
    except ImportError:  # pragma: no cover - only while the module is being written
        return
    app.add_typer(config_app, name="config")


_attach_config_app()


def _attach_parity() -> None:
    from tradeloom.cli.parity_cmd import parity_command

    app.command("parity")(parity_command)


_attach_parity()


def _attach_stress() -> None:
    from tradeloom.cli.stress_cmd import stress_command

    app.command("stress")(stress_command)


_attach_stress()


def _attach_research() -> None:
    from tradeloom.cli.research_cmd import optimize_command, studies_command, walkforward_command

    app.command("optimize")(optimize_command)
    app.command("walkforward")(walkforward_command)
    app.command("studies")(studies_command)


_attach_research()


def _attach_new() -> None:
    from tradeloom.cli.new_cmd import new_app

    app.add_typer(new_app, name="new")


_attach_new()


def _attach_session_commands() -> None:
    from tradeloom.cli.session_cmd import kill_command, resume_command, run_command, status_command

    app.command("run")(run_command)
    app.command("status")(status_command)
    app.command("kill")(kill_command)
    app.command("resume")(resume_command)


_attach_session_commands()


def _attach_store_apps() -> None:
    from tradeloom.cli.store_cmd import audit_app, db_app, runs_app

    app.add_typer(db_app, name="db")
    app.add_typer(audit_app, name="audit")
    app.add_typer(runs_app, name="runs")


_attach_store_apps()


@app.command()
def demo(
    out_dir: OutDir = Path("tradeloom-demo"),
    as_json: JsonFlag = False,
    store: StoreUrl = None,
    no_journal: NoJournal = False,
) -> None:
    """Run the shipped demo: a moving-average crossover on bundled US stock data."""
    config = resources.files("tradeloom.demo") / "demo.toml"
    with resources.as_file(config) as path:
        _run_backtest(
            [path], [], out_dir or Path("tradeloom-demo"), as_json, title="demo",
            store=store, journal=not no_journal,
        )  # fmt: skip


@app.command()
def backtest(
    files: ConfigFiles = None,
    config: ExtraConfigs = None,
    overrides: Overrides = None,
    out_dir: OutDir = None,
    as_json: JsonFlag = False,
    store: StoreUrl = None,
    no_journal: NoJournal = False,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Run each strategy in its own isolated process, as paper sessions do (slower; "
            "the results must not change).",
        ),
    ] = False,
) -> None:
    """Run a deployment as a backtest, write metrics, trades, orders, equity and a report, and
    journal it (every order state, fills, risk events, provenance, audit records)."""
    paths = [*(files or []), *(config or [])]
    if not paths:
        raise ConfigError("give at least one deployment config file (or -c FILE)")
    target = out_dir or Path("tradeloom-out") / paths[-1].stem
    _run_backtest(
        paths, overrides or [], target, as_json, store=store, journal=not no_journal,
        sandbox=sandbox,
    )  # fmt: skip


def _run_backtest(
    paths: list[Path],
    overrides: list[str],
    out_dir: Path,
    as_json: bool,
    title: str = "",
    *,
    store: str | None = None,
    journal: bool = True,
    sandbox: bool = False,
) -> None:
    from tradeloom.api import run_deployment
    from tradeloom.config import load_deployment
    from tradeloom.plugins import PluginHost
    from tradeloom.report.outputs import write_outputs

    host = PluginHost()
    resolved = load_deployment(paths, overrides, host=host)
    db = None
    if journal:
        from tradeloom.store import Store

        db = Store(store or resolved.store_url)
    with _bar_progress(enabled=not as_json) as progress:
        result = run_deployment(
            resolved, host, progress=progress, journal=db, out_dir=out_dir, sandbox=sandbox
        )
    with err.status("Writing outputs…") if not as_json else _nullcontext():
        written = write_outputs(result, out_dir)
    if db is not None:
        db.close()
    if as_json:
        sys.stdout.write(written["metrics.json"].read_text(encoding="utf-8"))
        return
    _print_summary(result, written, title)
    if db is not None:
        from tradeloom.store.db import display_url

        out.print(f"Journal: run [bold]{result.run_id}[/bold] in {display_url(db.url)}")


@contextmanager
def _bar_progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar over the bars played (updated every 4,096 bars, on stderr)."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[bold]backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("backtest", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _print_summary(result, written: dict[str, Path], title: str) -> None:  # type: ignore[no-untyped-def]
    table = Table(title=f"tradeloom {title or 'backtest'}: {result.title}", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for label, value in result.metrics.display_rows():
        table.add_row(label, value)
    out.print(table)
    dropped = result.provenance.get("data_rows_dropped", 0)
    problems = result.provenance.get("data_problems", [])
    if dropped or problems:
        out.print(f"[bold yellow]Data quality[/bold yellow]: {dropped} bad rows dropped")
        for line in problems:
            out.print(f"  • {line}")
    out.print("[bold]Assumptions[/bold]")
    for line in result.conventions:
        out.print(f"  • {line}")
    folder = written["report.html"].parent
    out.print(f"Wrote {', '.join(written)} to [bold]{folder}[/bold]")
    out.print(f"Report: [bold]{written['report.html'].resolve()}[/bold]")


@plugins_app.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every installed component: kind, name, distribution, version, load status and error."""
    from tradeloom.plugins import PluginHost

    host = PluginHost()
    rows = []
    for record in host.plugins:
        if record.status == "loaded" and record.components:
            for kind, name in record.components:
                spec = host.registry.get(kind, name) if _safe_get(host, kind, name) else None
                rows.append(
                    {
                        "kind": kind.value,
                        "name": name,
                        "distribution": record.distribution,
                        "version": record.version,
                        "status": "loaded",
                        "error": None,
                        "capabilities": spec.capabilities.describe(kind) if spec else "",
                        "description": spec.description if spec else "",
                    }
                )
        else:
            rows.append(
                {
                    "kind": None,
                    "name": record.name,
                    "distribution": record.distribution,
                    "version": record.version,
                    "status": record.status,
                    "error": record.error,
                    "capabilities": "",
                    "description": "",
                }
            )
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="tradeloom plugins", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("distribution", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("capabilities / error", overflow="fold", min_width=16)
    styles = {"loaded": "green", "failed": "red", "disabled": "yellow"}
    for kind in [*sorted({r["kind"] for r in rows if r["kind"]}), None]:
        group = [r for r in rows if r["kind"] == kind]
        if not group:
            continue
        table.add_row(f"[bold]{kind or 'plugins not loaded'}[/bold]", "", "", "")
        for row in group:
            style = styles.get(row["status"], "")
            table.add_row(
                f"  {row['name']}",
                f"{row['distribution']} {row['version']}",
                f"[{style}]{row['status']}[/{style}]",
                row["error"] or row["capabilities"],
            )
    out.print(table)


def _safe_get(host, kind, name) -> bool:  # type: ignore[no-untyped-def]
    try:
        host.registry.get(kind, name)
    except (LookupError, TradeloomError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TRADELOOM_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    if debug:
        from loguru import logger

        logger.enable("tradeloom")
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="tradeloom", standalone_mode=False)
    except TradeloomError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/red] {_one_line(str(exc))}", soft_wrap=True)
        code = exc.exit_code
    except typer.Abort:
        err.print("aborted")
        code = 130
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument, ...
        if debug:
            raise
        err.print(f"[red]error:[/red] {_one_line(exc.format_message())}", soft_wrap=True)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    code = int(code or 0)
    if argv is None:
        sys.exit(code)
    return code


def _one_line(message: str) -> str:
    return " ".join(message.split("\n")) if "\n" in message and len(message) < 300 else message
