"""``tradeloom config``: validate, show and describe deployment configs.

Errors are not handled here: a :class:`~tradeloom.errors.TradeloomError` propagates to the main
command, which prints one ``error: ...`` line and exits with the error's exit code (2 for
config mistakes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from tradeloom.cli.options import ConfigFiles, ExtraConfigs, Overrides
from tradeloom.config import json_schema, load_deployment
from tradeloom.errors import ConfigError
from tradeloom.plugins import PluginHost

config_app = typer.Typer(
    help="Validate, show and describe deployment configs (TOML).",
    no_args_is_help=True,
)


def _make_host() -> PluginHost:
    """The plugin host the commands validate against (tests replace this)."""
    return PluginHost()


def config_files(files: list[Path] | None, config: list[Path] | None) -> list[Path]:
    """Positional files first, then every ``-c FILE``, in the order given."""
    paths = [*(files or []), *(config or [])]
    if not paths:
        raise ConfigError("no config file given; pass FILE... or -c FILE")
    return paths


@config_app.command()
def validate(
    files: ConfigFiles = None, config: ExtraConfigs = None, set_: Overrides = None
) -> None:
    """Check a deployment config: its shape, every component's params and the mode."""
    paths = config_files(files, config)
    deployment = load_deployment(paths, set_ or (), host=_make_host())
    count = len(deployment.strategies)
    summary = (
        f": {', '.join(str(p) for p in paths)} — {count} "
        f"{'strategy' if count == 1 else 'strategies'}, data {deployment.data.type}, "
        f"broker {deployment.broker.type}"
    )
    Console(soft_wrap=True).print(Text.assemble(("OK", "bold green"), summary))


@config_app.command()
def show(
    files: ConfigFiles = None,
    config: ExtraConfigs = None,
    set_: Overrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of TOML.")] = False,
) -> None:
    """Print the resolved config (defaults filled in, secrets masked)."""
    paths = config_files(files, config)
    deployment = load_deployment(paths, set_ or (), host=_make_host())
    console = Console(soft_wrap=True)
    if as_json:
        console.out(json.dumps(deployment.to_dict(), indent=2, ensure_ascii=False), highlight=False)
        return
    header = (
        f"# Resolved from {', '.join(deployment.sources)}\n"
        f"# config hash: {deployment.config_hash()}\n"
    )
    console.out(header + deployment.to_toml(), highlight=False, end="")


@config_app.command()
def schema() -> None:
    """Print the JSON Schema of a deployment for the installed components."""
    text = json.dumps(json_schema(_make_host()), indent=2, ensure_ascii=False)
    Console(soft_wrap=True).out(text, highlight=False)
