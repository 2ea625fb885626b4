"""``tradeloom parity``: run a deployment through both engines and compare the trades.

Mounted on the main command with ``app.command("parity")(parity_command)``. Errors are not
handled here: a :class:`~tradeloom.errors.TradeloomError` propagates to the main command, which
prints one ``error: ...`` line and exits with its code — 2 for a config the check cannot run
(several strategies, risk rules, a strategy without ``signals``), 1 when the trades differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tradeloom.cli.options import ConfigFiles, ExtraConfigs, Overrides
from tradeloom.errors import ConfigError, RunError

if TYPE_CHECKING:
    from tradeloom.parity import ParityReport

__all__ = ["parity_command"]

RtolOpt = Annotated[
    float, typer.Option("--rtol", help="Relative tolerance for prices, PnL and fees.")
]
ShowOpt = Annotated[int, typer.Option("--show", help="How many differences to list.")]


def parity_command(
    files: ConfigFiles = None,
    config: ExtraConfigs = None,
    overrides: Overrides = None,
    rtol: RtolOpt = 1e-9,
    show: ShowOpt = 20,
) -> None:
    """Run a backtest deployment through the event and the vector engine and diff the trades.

    Exits 0 when every trade, the fill count and the final equity agree, 1 when they differ.
    """
    from tradeloom.config import load_deployment
    from tradeloom.parity import run_parity
    from tradeloom.plugins import PluginHost

    paths = [*(files or []), *(config or [])]
    if not paths:
        raise ConfigError("give at least one deployment config file (or -c FILE)")
    host = PluginHost()
    resolved = load_deployment(paths, overrides or [], host=host)
    report = run_parity(resolved, host, rtol=rtol, max_differences=show)
    print_report(report, Console(highlight=False))
    if not report.ok:
        raise RunError(report.summary())


def print_report(report: ParityReport, console: Console) -> None:
    """The comparison as rich tables: the headline checks, then the first differences."""
    a, b = report.labels
    table = Table(title="tradeloom parity: event engine vs vector engine")
    for column in ("check", a, b, "result"):
        table.add_column(column, justify="left" if column == "check" else "right")
    table.add_row(
        "trades", f"{report.trades_a:,}", f"{report.trades_b:,}", _verdict(report.trades_match)
    )
    table.add_row("matching trades", f"{report.matched:,}", f"{report.matched:,}", "")
    if report.fills_a is not None and report.fills_b is not None:
        table.add_row(
            "fills", f"{report.fills_a:,}", f"{report.fills_b:,}", _verdict(report.fills_match)
        )
    if report.final_equity_a is not None and report.final_equity_b is not None:
        table.add_row(
            "final equity",
            f"{report.final_equity_a:,.4f}",
            f"{report.final_equity_b:,.4f}",
            _verdict(report.equity_matches),
        )
    console.print(table)
    if report.differences:
        diff = Table(
            title=f"first {len(report.differences)} of {report.n_differences:,} differences "
            f"(rtol {report.rtol:g})"
        )
        for column in ("trade", "column", a, b):
            diff.add_column(column)
        for d in report.differences:
            diff.add_row(str(d.row), d.column, _show(d.a), _show(d.b))
        console.print(diff)
    console.print(report.summary(), soft_wrap=True)


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return ""
    return "[green]same[/green]" if ok else "[red]DIFFERENT[/red]"


def _show(value: Any) -> str:
    return "—" if value is None else str(value)
