"""``tradeloom stress``: stress tests of a deployment (:mod:`tradeloom.research.stress_run`).

Mounted on the main command with ``app.command("stress")(stress_command)``. Errors are not
handled here: a :class:`~tradeloom.errors.TradeloomError` propagates to the main command, which
prints one ``error: ...`` line and exits with its code (2 for a bad config, scenario file or
option).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from tradeloom.cli.options import ConfigFiles, ExtraConfigs, Overrides, task_progress
from tradeloom.errors import ConfigError

if TYPE_CHECKING:
    from tradeloom.research.stress_run import StressReport

__all__ = ["stress_command"]

ScenarioOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--scenario",
        metavar="NAME",
        help="A scenario to run (repeatable): resample, bootstrap, gap, volatility, liquidity "
        "or one defined in --scenarios. Default: every scenario of --scenarios, else resample "
        "and bootstrap.",
        show_default=False,
    ),
]
ScenariosFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--scenarios",
        metavar="FILE",
        help="TOML file of named scenarios: \\[scenarios.NAME] tables with a type and its "
        "parameters.",
        show_default=False,
    ),
]
PathsOpt = Annotated[
    int | None,
    typer.Option(
        "--paths",
        min=1,
        metavar="N",
        help="Paths of every Monte Carlo scenario (default: the scenario's own, else 10,000 "
        "for resample and 1,000 for bootstrap).",
        show_default=False,
    ),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", min=0, help="Seed of every random draw: same seed, same numbers.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the output files.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print stress.json on stdout.")]


def stress_command(
    files: ConfigFiles = None,
    config: ExtraConfigs = None,
    overrides: Overrides = None,
    scenario: ScenarioOpt = None,
    scenarios_file: ScenariosFileOpt = None,
    paths: PathsOpt = None,
    seed: SeedOpt = 0,
    out_dir: OutOpt = Path("out/stress"),
    as_json: JsonOpt = False,
) -> None:
    """Stress-test a deployment: Monte Carlo of its trades, block bootstrap of its returns, and
    injected gap, volatility and liquidity scenarios; prints percentile tables and writes
    stress.json, one CSV per scenario and stress.html. Runs are not journaled."""
    from tradeloom.config import load_deployment
    from tradeloom.plugins import PluginHost
    from tradeloom.research.stress_run import (
        MONTE_CARLO,
        load_scenarios,
        run_stress,
        select_scenarios,
        write_stress_outputs,
    )

    config_paths = [*(files or []), *(config or [])]
    if not config_paths:
        raise ConfigError("give at least one deployment config file (or -c FILE)")
    defined = load_scenarios(scenarios_file) if scenarios_file is not None else None
    chosen = select_scenarios(scenario, defined)
    resolved = load_deployment(config_paths, overrides or [], host=PluginHost())
    err = Console(stderr=True, highlight=False)
    units = {"baseline": "bars"}
    units.update({n: "paths" if s.type in MONTE_CARLO else "bars" for n, s in chosen.items()})
    with task_progress(err, enabled=not as_json, units=units) as progress:
        report = run_stress(resolved, chosen, seed=seed, n_paths=paths, progress=progress)
    written = write_stress_outputs(report, out_dir)
    if as_json:
        sys.stdout.write(written["stress.json"].read_text(encoding="utf-8"))
        return
    out = Console(highlight=False)
    print_report(report, out)
    out.print(f"Wrote {', '.join(written)} to [bold]{out_dir}[/bold]")
    out.print(f"Report: [bold]{written['stress.html'].resolve()}[/bold]")


def print_report(report: StressReport, console: Console) -> None:
    """The baseline, then each scenario's summary and table."""
    from tradeloom.research.stress_run import (
        SUMMARY_METRICS,
        BootstrapOutcome,
        ResampleOutcome,
        SkippedOutcome,
        format_metric,
    )

    base = report.baseline_summary()
    console.print(
        f"[bold]tradeloom stress[/bold]: {report.title}, {base['start']} → {base['end']}, "
        f"seed {report.seed}",
        soft_wrap=True,
    )
    table = Table()
    table.add_column("", style="bold")
    table.add_column("baseline", justify="right")
    for key, label in SUMMARY_METRICS:
        table.add_row(label, format_metric(key, base[key]))
    console.print(table)
    for outcome in report.scenarios:
        if isinstance(outcome, SkippedOutcome):
            console.print(
                f"[bold yellow]{outcome.name}[/bold yellow] ({outcome.type}): {outcome.summary()}"
            )
            continue
        header, rows = outcome.table()
        monte_carlo = isinstance(outcome, ResampleOutcome | BootstrapOutcome)
        kind = "percentiles over the paths" if monte_carlo else "reference vs scenario"
        label = outcome.name if outcome.name == outcome.type else f"{outcome.name} ({outcome.type})"
        scenario = Table(title=f"{label}: {kind}")
        for i, column in enumerate(header):
            scenario.add_column(column, justify="left" if i == 0 else "right")
        for row in rows:
            scenario.add_row(*row)
        console.print(scenario)
        console.print(f"  {outcome.summary()}", soft_wrap=True)
