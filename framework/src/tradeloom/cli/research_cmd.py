"""``tradeloom optimize``, ``tradeloom walkforward`` and ``tradeloom studies``.

Errors propagate to the main command as :class:`~tradeloom.errors.TradeloomError`: one
``error: ...`` line and exit code 2 for a bad config, space file or option.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tradeloom.cli.options import ConfigFiles, ExtraConfigs, Overrides, task_progress
from tradeloom.errors import ConfigError

if TYPE_CHECKING:
    from tradeloom.config import ResolvedDeployment
    from tradeloom.research.optimize import OptimizeResult
    from tradeloom.research.space import SearchSpace
    from tradeloom.research.walkforward import WalkForwardResult
    from tradeloom.store import Store

__all__ = ["optimize_command", "studies_command", "walkforward_command"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

Space = Annotated[
    Path | None, typer.Option("--space", help="The search space (TOML; see docs/optimize.md).")
]
Study = Annotated[
    str | None,
    typer.Option(
        "--study",
        help="Study name in the journal (default: derived from the config, space and data, so "
        "the same command resumes it).",
    ),
]
Fresh = Annotated[bool, typer.Option("--fresh", help="Delete a stored study of that name first.")]
Sampler = Annotated[
    str | None, typer.Option("--sampler", help="grid, random, tpe, cmaes or nsga2.")
]
Trials = Annotated[int | None, typer.Option("--trials", help="Number of trials (not grid).")]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed of the sampler.")]
Batch = Annotated[
    int | None, typer.Option("--batch", help="Trials proposed together (they shape the search).")
]
Objectives = Annotated[
    list[str] | None,
    typer.Option(
        "--objective",
        help="Metric to optimise (repeat for a Pareto front): sharpe, sortino, calmar, "
        "total_return, cagr, max_drawdown, final_equity, num_trades, or package.module:function.",
    ),
]
Directions = Annotated[
    list[str] | None,
    typer.Option("--direction", help="maximize or minimize, one per --objective."),
]
Constraints = Annotated[
    list[str] | None,
    typer.Option("--constraint", help="e.g. --constraint 'num_trades >= 10' (repeatable)."),
]
Partitions = Annotated[
    int | None, typer.Option("--partitions", help="CSCV blocks of the PBO (even, default 16).")
]
Executor = Annotated[
    str, typer.Option("--executor", help="inline, process or dask (same trials whichever).")
]
Workers = Annotated[
    int | None, typer.Option("--workers", help="Worker processes (default: one per core).")
]
Scheduler = Annotated[
    str | None,
    typer.Option("--scheduler", help="An existing Dask scheduler, tcp://host:port."),
]
Engine = Annotated[
    str, typer.Option("--engine", help="auto (vector when the deployment allows), vector, event.")
]
OutDir = Annotated[Path | None, typer.Option("--out", help="Folder for the output files.")]
StoreUrl = Annotated[
    str | None, typer.Option("--store", help="Journal database URL holding the studies.")
]
NoJournal = Annotated[
    bool,
    typer.Option("--no-journal", help="Keep the study in a temporary database (not resumable)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print result.json on stdout.")]
Stress = Annotated[
    bool,
    typer.Option(
        "--stress",
        help="Stress-test the selected parameters (trade resampling and block bootstrap) and "
        "add the distributions to the report.",
    ),
]


def _inputs(
    files: list[Path] | None,
    config: list[Path] | None,
    overrides: list[str] | None,
    space_path: Path | None,
    settings: dict[str, Any],
) -> tuple[ResolvedDeployment, SearchSpace]:
    from tradeloom.config import load_deployment
    from tradeloom.plugins import PluginHost
    from tradeloom.research.space import load_space

    paths = [*(files or []), *(config or [])]
    if not paths:
        raise ConfigError("give at least one deployment config file (or -c FILE)")
    if space_path is None:
        raise ConfigError(
            "give the search space: --space FILE (a TOML file with a [params] table; see "
            "docs/optimize.md)",
            path="--space",
        )
    resolved = load_deployment(paths, overrides or [], host=PluginHost())
    return resolved, load_space(space_path, settings)


def _settings(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, [])}


@contextmanager
def _store(url: str | None, resolved: ResolvedDeployment, journal: bool) -> Iterator[Store | None]:
    if not journal:
        yield None
        return
    from tradeloom.store import Store

    store = Store(url or resolved.store_url)
    try:
        yield store
    finally:
        store.close()


def optimize_command(
    files: ConfigFiles = None,
    config: ExtraConfigs = None,
    overrides: Overrides = None,
    space: Space = None,
    study: Study = None,
    fresh: Fresh = False,
    sampler: Sampler = None,
    trials: Trials = None,
    seed: Seed = None,
    batch: Batch = None,
    objective: Objectives = None,
    direction: Directions = None,
    constraint: Constraints = None,
    partitions: Partitions = None,
    executor: Executor = "inline",
    workers: Workers = None,
    scheduler: Scheduler = None,
    engine: Engine = "auto",
    out_dir: OutDir = None,
    store: StoreUrl = None,
    no_journal: NoJournal = False,
    stress: Stress = False,
    as_json: AsJson = False,
) -> None:
    """Search a strategy's parameters (grid, random, TPE, CMA-ES, NSGA-II), in the journal as a
    resumable study; report the best trial or the Pareto front with the Probabilistic and
    Deflated Sharpe Ratios and the Probability of Backtest Overfitting."""
    from tradeloom.research.optimize import optimize

    settings = _settings(
        sampler=sampler, trials=trials, seed=seed, batch=batch, objectives=objective,
        directions=direction, constraints=constraint, partitions=partitions,
    )  # fmt: skip
    resolved, search = _inputs(files, config, overrides, space, settings)
    target = (
        out_dir or Path("tradeloom-out") / "optimize" / (files or config or [Path("x")])[-1].stem
    )
    bars = task_progress(err, enabled=not as_json, eta=True, drop_finished=["fold "])
    with _store(store, resolved, not no_journal) as db, bars as progress:
        result = optimize(
            resolved, search, store=db, study=study, executor=executor, workers=workers,
            scheduler=scheduler, engine=engine, fresh=fresh,
            progress=(lambda d, t: progress("trials", d, t)) if progress else None,
        )  # fmt: skip
    stress_report = _stress(resolved, result, as_json) if stress else None
    written = result.write(target, html=True, stress=stress_report)
    if as_json:
        sys.stdout.write(written["result.json"].read_text(encoding="utf-8"))
        return
    _print_optimize(result, written)


def _stress(resolved: ResolvedDeployment, result: OptimizeResult, quiet: bool) -> Any:
    """Trade resampling and block bootstrap of the selected trial's backtest."""
    from tradeloom.research.stress_run import run_stress

    if result.best_params is None:
        err.print("[yellow]No feasible trial: nothing to stress-test.[/]")
        return None
    deployment = with_params(resolved, result.strategy_id, result.best_params, result.space)
    with err.status("Stress-testing the selected parameters…") if not quiet else _null():
        return run_stress(deployment, ["resample", "bootstrap"], seed=result.space.optimize.seed)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def with_params(
    resolved: ResolvedDeployment, strategy_id: str, params: dict[str, Any], space: SearchSpace
) -> ResolvedDeployment:
    """``resolved`` with strategy ``strategy_id`` given the space's fixed and ``params``."""
    strategies = []
    for component in resolved.strategies:
        if (component.id or component.spec.name) == strategy_id:
            merged = {**component.params.model_dump(), **space.fixed, **params}
            component = dataclasses.replace(component, params=component.spec.cls.Params(**merged))
        strategies.append(component)
    return dataclasses.replace(resolved, strategies=strategies)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if pct:
        return f"{value:+.2%}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


_PCT = {"total_return", "cagr", "max_drawdown"}


def _ratio(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.2f}"


def _print_optimize(result: OptimizeResult, written: dict[str, Path]) -> None:
    s = result.summary()
    out.print(
        f"[bold]Study[/] {result.study}: {s['trials']} trials ({s['distinct']} distinct, "
        f"{s['complete']} complete, "
        f"{s['feasible']} feasible; {result.evaluated} run now in {result.seconds:.1f} s, "
        f"{result.executor} × {result.workers}, {result.engine} engine, {result.bars:,} bars)"
    )
    objectives = result.objectives
    shown = result.trials[result.trials.feasible] if "feasible" in result.trials else result.trials
    if len(objectives) == 1 and not shown.empty:
        ascending = result.space.optimize.resolved_directions[0] == "minimize"
        names = list(result.space.dimensions)
        shown = (
            shown.sort_values([f"value_{objectives[0]}", "number"], ascending=[ascending, True])
            .drop_duplicates(names)
            .head(10)
        )
        title = f"Best trials by {objectives[0]}"
    else:
        shown = shown[shown.number.isin(result.best)]
        title = f"Pareto front ({', '.join(objectives)})"
    table = Table(title=title)
    names = list(result.space.dimensions)
    metrics = [m for m in ("sharpe", "total_return", "max_drawdown", "num_trades") if m in shown]
    for col in ["#", *names, *metrics]:
        table.add_column(col, justify="right")
    for row in shown.itertuples():
        table.add_row(
            str(row.number),
            *(_fmt(getattr(row, n)) for n in names),
            *(_fmt(getattr(row, m), m in _PCT) for m in metrics),
        )
    out.print(table)
    if result.best_params is not None:
        chosen = ", ".join(f"{k}={v}" for k, v in result.best_params.items())
        out.print(f"[bold]Selected[/] trial {result.selected}: {chosen}")
    out.print("[bold]Overfitting[/]")
    for line in result.overfitting.lines():
        out.print(f"  {line}")
    out.print("Files: " + ", ".join(str(p) for p in written.values()))


def walkforward_command(
    files: ConfigFiles = None,
    config: ExtraConfigs = None,
    overrides: Overrides = None,
    space: Space = None,
    train: Annotated[
        str | None, typer.Option("--train", help="Training window: bars (504) or a span (2y).")
    ] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="Test window: bars (126) or a span (6m).")
    ] = None,
    step: Annotated[
        str | None, typer.Option("--step", help="How far each fold moves (default: --test).")
    ] = None,
    anchored: Annotated[
        bool | None,
        typer.Option("--anchored/--rolling", help="Training windows start at the first bar."),
    ] = None,
    study: Study = None,
    fresh: Fresh = False,
    sampler: Sampler = None,
    trials: Trials = None,
    seed: Seed = None,
    batch: Batch = None,
    objective: Objectives = None,
    direction: Directions = None,
    constraint: Constraints = None,
    partitions: Partitions = None,
    executor: Executor = "inline",
    workers: Workers = None,
    scheduler: Scheduler = None,
    engine: Engine = "auto",
    out_dir: OutDir = None,
    store: StoreUrl = None,
    no_journal: NoJournal = False,
    stress: Stress = False,
    as_json: AsJson = False,
) -> None:
    """Walk-forward analysis: in each fold optimise on the training window, trade the winner on
    the test window that follows; report every fold (IS vs OOS), parameter stability and the
    stitched out-of-sample equity."""
    from tradeloom.research.space import WalkForwardSettings
    from tradeloom.research.walkforward import walk_forward

    settings = _settings(
        sampler=sampler, trials=trials, seed=seed, batch=batch, objectives=objective,
        directions=direction, constraints=constraint, partitions=partitions,
    )  # fmt: skip
    resolved, search = _inputs(files, config, overrides, space, settings)
    windows = dict(search.walkforward.model_dump()) if search.walkforward else {}
    windows.update(
        _settings(train=_length(train), test=_length(test), step=_length(step), anchored=anchored)
    )
    for required in ("train", "test"):
        if required not in windows:
            raise ConfigError(
                f"say how long the {required} windows are: --{required} (bars or a span like 2y) "
                f"or {required} = ... in the space file's [walkforward] table",
                path=f"walkforward.{required}",
            )
    try:
        wf_settings = WalkForwardSettings(**windows)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") else None  # type: ignore[attr-defined]
        field = ".".join(str(p) for p in first["loc"]) if first else ""
        message = first["msg"].removeprefix("Value error, ") if first else str(exc)
        raise ConfigError(message, path=f"walkforward.{field}" if field else None) from None
    target = (
        out_dir or Path("tradeloom-out") / "walkforward" / (files or config or [Path("x")])[-1].stem
    )
    bars = task_progress(err, enabled=not as_json, eta=True, drop_finished=["fold "])
    with _store(store, resolved, not no_journal) as db, bars as progress:
        result = walk_forward(
            resolved, search, wf_settings, store=db, name=study, executor=executor,
            workers=workers, scheduler=scheduler, engine=engine, fresh=fresh, progress=progress,
        )  # fmt: skip
    stress_report = None
    if stress and not result.stitched.empty:
        stress_report = _stress_wf(resolved, result, as_json)
    written = result.write(target, html=True, stress=stress_report)
    if as_json:
        sys.stdout.write(written["result.json"].read_text(encoding="utf-8"))
        return
    _print_walkforward(result, written)


def _stress_wf(resolved: ResolvedDeployment, result: WalkForwardResult, quiet: bool) -> Any:
    """Stress-test the last fold's parameters (what would be deployed now)."""
    from tradeloom.research.stress_run import run_stress

    last = next((f for f in reversed(result.folds) if f.params is not None), None)
    if last is None or last.params is None:
        return None
    deployment = with_params(resolved, result.strategy_id, last.params, result.space)
    with err.status("Stress-testing the last fold's parameters…") if not quiet else _null():
        return run_stress(deployment, ["resample", "bootstrap"], seed=result.space.optimize.seed)


def _length(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


def _print_walkforward(result: WalkForwardResult, written: dict[str, Path]) -> None:
    oos = result.oos
    out.print(
        f"[bold]Walk-forward[/] {result.name}: {len(result.folds)} folds, {oos.get('trials', 0)} "
        f"trials in {result.seconds:.1f} s ({result.engine} engine)"
    )
    table = Table(title="Folds: in-sample (IS) vs out-of-sample (OOS); SR: Sharpe ratio")
    names = list(result.space.dimensions)
    columns = ["#", "test from", *names, "IS SR", "OOS SR", "OOS ret", "DSR", "PBO"]
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    for fold in result.folds:
        row = fold.row(names)
        table.add_row(
            str(fold.index),
            str(fold.test_start.date()),
            *(_fmt(row[n]) for n in names),
            _ratio(row["is_sharpe"]),
            _ratio(row["oos_sharpe"]),
            _fmt(row["oos_total_return"], pct=True),
            _ratio(row["dsr"]),
            _ratio(row["pbo"]),
        )
    out.print(table)
    if "total_return" in oos:
        out.print(
            f"[bold]Out of sample[/] (stitched): return {_fmt(oos['total_return'], True)}, "
            f"CAGR {_fmt(oos.get('cagr'), True)}, Sharpe {_ratio(oos.get('sharpe'))}, "
            f"max drawdown {_fmt(oos.get('max_drawdown'), True)}, median walk-forward "
            f"efficiency {_ratio(oos.get('efficiency'))}"
        )
        out.print(f"  PSR {_ratio(oos.get('psr'))}: {oos.get('psr_verdict', '')}")
    for row in result.stability.to_dict("records"):
        out.print(
            f"  {row['param']}: {row.get('verdict', '')} (chosen {row['values']}, "
            f"{row['changes']} changes)"
        )
    out.print("Files: " + ", ".join(str(p) for p in written.values()))


def studies_command(
    store: StoreUrl = None,
    as_json: AsJson = False,
) -> None:
    """List the optimisation studies in the journal, with their trial counts."""
    import json

    from tradeloom.store import Store
    from tradeloom.store.studies import StudyStore

    db = Store(store)
    try:
        rows = StudyStore(db).studies()
    finally:
        db.close()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="Studies")
    for col in (
        "name",
        "created",
        "strategy",
        "sampler",
        "engine",
        "complete",
        "failed",
        "running",
    ):
        table.add_column(col)
    for r in rows:
        counts = r["trials"]
        table.add_row(
            r["name"], r["created_at"][:19], r["strategy_id"], str(r["sampler"]), r["engine"],
            str(counts.get("complete", 0)), str(counts.get("failed", 0)),
            str(counts.get("running", 0)),
        )  # fmt: skip
    out.print(table)
