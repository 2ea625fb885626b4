"""``tradeloom new strategy NAME``: render the strategy package template, without questions.

The template is a cookiecutter template that lives in the package, ``tradeloom/templates/strategy``
(so the sdist and the wheel carry it); the repository's ``cookiecutter-strategy/`` is a link to it,
for ``cookiecutter cookiecutter-strategy``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import unicodedata
from importlib import metadata, resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tradeloom.errors import ConfigError

new_app = typer.Typer(help="Create new projects from tradeloom's templates.", no_args_is_help=True)

out = Console(highlight=False)

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
"""A valid slug: lower-case words of letters and digits joined by ``-``, starting with a letter
(it is the registered strategy name, and ``tradeloom_<slug>`` must be a Python package name)."""


def slugify(name: str) -> str:
    """``"Mean Revert"`` → ``"mean-revert"``: accents dropped (``"Überlauf"`` → ``"uberlauf"``),
    lower case, every run of other characters one ``-``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def class_name(slug: str) -> str:
    """``"mean-revert"`` → ``"MeanRevert"``."""
    return "".join(word.capitalize() for word in slug.split("-"))


def kernel_range(version: str) -> str:
    """The range of tradeloom versions a new package supports: the current minor series
    (``0.1.3`` → ``>=0.1,<0.2``; ``1.4.0`` → ``>=1.4,<2``)."""
    parts = re.findall(r"\d+", version)[:2]
    major, minor = (int(p) for p in [*parts, "0", "0"][:2])
    if major == 0:
        return f">=0.{minor},<0.{minor + 1}"
    return f">={major}.{minor},<{major + 1}"


def template_dir() -> Path:
    """The strategy template, inside the installed package."""
    packaged = resources.files("tradeloom") / "templates" / "strategy"
    if isinstance(packaged, Path) and (packaged / "cookiecutter.json").is_file():
        return packaged
    raise ConfigError(
        f"the strategy template is missing from this tradeloom installation (looked in "
        f"{packaged}); reinstall tradeloom"
    )


def _check_text(option: str, value: str) -> None:
    """Refuse what would break the rendered files: several lines, backslashes and triple quotes
    (Python strings), ``{{``, ``{%`` and ``{#`` (the template language itself)."""
    bad = [s for s in ("\\", "\n", "\r", "\t", '"""', "{{", "{%", "{#") if s in value]
    if bad:
        raise ConfigError(
            f"{option} must be one line without backslashes, triple quotes or template markup "
            f"({', '.join(map(repr, bad))}), got {value!r}"
        )


@new_app.command("strategy")
def strategy_command(
    name: Annotated[str, typer.Argument(help='The strategy\'s name in words, e.g. "Mean Revert".')],
    author: Annotated[str, typer.Option("--author", help="Author of the package.")] = "Your Name",
    email: Annotated[
        str, typer.Option("--email", help="Author's e-mail (left out when empty).")
    ] = "",
    description: Annotated[
        str | None,
        typer.Option("--description", help="One line for the package metadata and README."),
    ] = None,
    vectorised: Annotated[
        bool,
        typer.Option(
            "--vectorised/--no-vectorised",
            help="Give the strategy a signals() method for the vector engine (sweeps, "
            "optimisation).",
        ),
    ] = True,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder in which the package folder is created.")
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Render into an existing package folder.")
    ] = False,
) -> None:
    """Create the package tradeloom-<slug> for a new strategy: src layout, a strategy with a
    Params model, contract tests, an example backtest, README, ruff config and CI."""
    from tradeloom import __version__

    slug = slugify(name)
    if not SLUG_RE.match(slug):
        raise ConfigError(
            f"cannot make a strategy name from {name!r} (got slug {slug!r}): use words of "
            'letters and digits that start with a letter, e.g. "Mean Revert"'
        )
    description = description or f"The {slug} strategy for tradeloom."
    texts = {"NAME": name, "--author": author, "--email": email, "--description": description}
    for option, value in texts.items():
        _check_text(option, value)
    distribution = f"tradeloom-{slug}"
    installed = _installed_version(distribution)
    if installed is not None and not force:
        raise ConfigError(
            f"a distribution named {distribution} is already installed (version {installed}); "
            "choose another name, or pass --force to render it anyway"
        )
    target = out_dir / distribution
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; choose another --out or pass --force")
    context = {
        "strategy_name": name,
        "slug": slug,
        "distribution": distribution,
        "package": f"tradeloom_{slug.replace('-', '_')}",
        "class_name": class_name(slug),
        "author": author,
        "email": email,
        "description": description,
        "vectorised": "yes" if vectorised else "no",
    }
    if __version__ != "0.0.0":  # a source tree without metadata keeps the template's default
        context["tradeloom_range"] = kernel_range(__version__)
    folder = _render(template_dir(), context, out_dir, overwrite=force)
    out.print(f"Created [bold]{folder}[/bold] (strategy [bold]{slug}[/bold])", soft_wrap=True)
    out.print(f"Next: pip install -e {folder} && pytest {folder / 'tests'}", soft_wrap=True)


def _installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _render(template: Path, context: dict[str, str], out_dir: Path, *, overwrite: bool) -> Path:
    """Render ``template`` with ``context`` into ``out_dir``; returns the package folder.

    cookiecutter runs with a throw-away config, so it neither reads the user's ``~/.cookiecutterrc``
    nor writes a replay file into their home folder.
    """
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder {out_dir}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="tradeloom-new-") as scratch:
        config = Path(scratch) / "config.yaml"
        config.write_text(
            f"replay_dir: '{Path(scratch) / 'replay'}'\n"
            f"cookiecutters_dir: '{Path(scratch) / 'templates'}'\n",
            encoding="utf-8",
        )
        try:
            folder = cookiecutter(
                str(template),
                no_input=True,
                extra_context=context,
                output_dir=str(out_dir),
                overwrite_if_exists=overwrite,
                config_file=str(config),
            )
        except CookiecutterException as exc:
            if not overwrite:  # never delete a folder the user already had
                shutil.rmtree(out_dir / context["distribution"], ignore_errors=True)
            raise ConfigError(f"rendering the strategy template failed: {exc}") from exc
    return Path(folder)
