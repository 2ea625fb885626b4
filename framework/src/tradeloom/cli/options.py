"""What the commands share: the options naming a deployment, and progress bars.

Every command that takes a deployment takes it the same way: config files (positional),
``-c/--config`` for more, and ``--set PATH=VALUE`` overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ConfigFiles", "ExtraConfigs", "Overrides", "task_progress"]

ConfigFiles = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Config files, merged left to right (later files override earlier ones).",
        show_default=False,
    ),
]
ExtraConfigs = Annotated[
    list[Path] | None,
    typer.Option(
        "--config",
        "-c",
        help="A config file to merge after the positional ones; repeat for more.",
        show_default=False,
    ),
]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="PATH=VALUE",
        help=(
            "Override one value after merging, e.g. --set run.initial_cash=50000 or "
            "--set strategies[0].params.fast=5. VALUE is read as TOML, else as plain text."
        ),
        show_default=False,
    ),
]


@contextmanager
def task_progress(
    console: Console,
    *,
    enabled: bool = True,
    units: dict[str, str] | None = None,
    eta: bool = False,
    drop_finished: Sequence[str] = (),
) -> Iterator[Callable[[str, int, int], None] | None]:
    """Rich progress bars, one per task, on ``console``: yields ``update(task, done, total)``
    (``None`` when not ``enabled``). ``units`` says what each task counts; ``eta`` adds the
    time remaining; a finished task whose name starts with one of ``drop_finished`` is
    removed (e.g. the folds of a walk-forward, one after the other)."""
    if not enabled:
        yield None
        return
    units = units or {}
    columns: list[ProgressColumn] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
    ]
    if eta:
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total, unit=units.get(name, ""))
            bar.update(tasks[name], completed=done, total=total)
            if done >= total and name.startswith(tuple(drop_finished)):
                bar.remove_task(tasks.pop(name))

        yield update
