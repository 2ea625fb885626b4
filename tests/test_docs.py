"""Docs that cannot drift (datasette style).

Every hook is documented (in its docstring, in the generated hook reference and on the
plugin-authoring page) with every argument, and exercised by a test; every built-in component
appears in the docs; the generated reference pages equal what ``tradeloom.docgen`` renders now;
the tutorial's commands run; ``mkdocs build --strict`` passes. The checks themselves are tested
against a throwaway hookspec module, so they are known to fail when they should.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

import tradeloom
from tradeloom import docgen, hookspecs
from tradeloom.components import Kind
from tradeloom.plugins import PluginHost

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"
AUTHORING_PAGE = "plugins.md"

# Where each kind of component is documented by hand.
KIND_PAGES = {
    Kind.STRATEGY: ["strategies.md"],
    Kind.DATA_SOURCE: ["data.md", "live-data.md"],
    Kind.RISK_RULE: ["risk.md"],
    Kind.BROKER: ["concepts.md", "fills.md", "costs.md"],
    Kind.COST_MODEL: ["costs.md"],
    Kind.FILL_MODEL: ["fills.md"],
}

HOOK_NAMES = [h.name for h in docgen.hook_specs(hookspecs)]


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


# --- 1. every hook documented, with every argument ---------------------------------------------


def test_the_kernel_has_the_hooks_the_checks_iterate_over() -> None:
    # Guards the checks below against passing vacuously (e.g. the spec marker renamed).
    assert HOOK_NAMES == [
        "tradeloom_register_strategies",
        "tradeloom_register_data_sources",
        "tradeloom_register_risk_rules",
        "tradeloom_register_brokers",
        "tradeloom_register_cost_models",
        "tradeloom_register_fill_models",
        "tradeloom_run_start",
        "tradeloom_run_finish",
    ]
    start = next(h for h in docgen.hook_specs(hookspecs) if h.name == "tradeloom_run_start")
    assert start.argument_names == ["run_id", "mode", "config"]
    assert start.signature == (
        "def tradeloom_run_start(run_id: str, mode: str, config: dict[str, Any]) -> None"
    )
    assert (start.firstresult, start.historic) == (False, False)


def test_every_hook_argument_is_described_in_its_docstring() -> None:
    assert docgen.hook_problems(hookspecs) == []


@pytest.mark.parametrize("page", [docgen.HOOKS_PAGE, AUTHORING_PAGE])
def test_every_hook_is_documented_with_every_argument(page: str) -> None:
    assert docgen.page_problems(hookspecs, _page(page), page) == []


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_the_hook_reference_has_a_section_per_hook(hook: str) -> None:
    text = _page(docgen.HOOKS_PAGE)
    section = text.split(f"### `{hook}`", 1)[1].split("\n### ", 1)[0]
    spec = next(h for h in docgen.hook_specs(hookspecs) if h.name == hook)
    assert spec.signature in section
    for arg in spec.argument_names:
        assert f"| `{arg}` |" in section
    # The docstring's first line is the section's description.
    assert spec.doc.splitlines()[0].replace("``", "`") in section


# --- 2. every hook exercised by a test ----------------------------------------------------------


def test_every_hook_is_exercised_by_a_test() -> None:
    assert docgen.untested_hooks(hookspecs, TESTS) == []


# The three contribution hooks no other test implements: a plugin contributing a data source, a
# broker and a risk rule, loaded through an entry point and used by a backtest.
CONTRIB = '''
from tradeloom import hookimpl
from tradeloom.data.datasets import DatasetSource
from tradeloom.execution import SimulatedBroker
from tradeloom.risk import RiskRule
from tradeloom.risk.base import Reject


class BundledStocks(DatasetSource):
    """The bundled US stocks under another name."""


class PaperBroker(SimulatedBroker):
    """The simulated broker under another name."""


class NoBuys(RiskRule):
    """Refuses every buy."""

    def check(self, order, view):
        if order.side.value == "buy":
            return Reject(self.name, "buys are not allowed")
        return None


@hookimpl
def tradeloom_register_data_sources(register):
    register("docs-stocks", BundledStocks)


@hookimpl
def tradeloom_register_brokers(register):
    register("docs-broker", PaperBroker, description="Simulated, for the docs tests.")


@hookimpl
def tradeloom_register_risk_rules(register):
    register("no-buys", NoBuys)
'''


def test_a_plugin_contributes_a_data_source_a_broker_and_a_risk_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tl_docs_contrib.py").write_text(CONTRIB)
    ep = metadata.EntryPoint(name="docs", value="tl_docs_contrib", group="tradeloom")
    try:
        installed = list(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP))
        host = PluginHost(entry_points=[*installed, ep], env={"TRADELOOM_STRICT_PLUGINS": "1"})
        (record,) = [p for p in host.plugins if p.name == "docs"]
        assert record.status == "loaded"
        assert sorted(record.components) == [
            (Kind.BROKER, "docs-broker"),
            (Kind.DATA_SOURCE, "docs-stocks"),
            (Kind.RISK_RULE, "no-buys"),
        ]
        assert host.spec(Kind.BROKER, "docs-broker").description == (
            "Simulated, for the docs tests."
        )
        assert host.spec(Kind.RISK_RULE, "no-buys").description == "Refuses every buy."

        deploy = tmp_path / "deploy.toml"
        deploy.write_text(
            textwrap.dedent("""
            [data]
            type = "docs-stocks"
            params = { name = "us-stocks-daily", symbols = ["IBM"] }
            [strategy]
            type = "sma-crossover"
            params = { fast = 5, slow = 20, quantity = 10 }
            [broker]
            type = "docs-broker"
            [[risk]]
            type = "no-buys"
            [run]
            start = "2010-01-01"
            end = "2010-12-31"
            """)
        )
        result = tradeloom.backtest(deploy, host=host)
        # The contributed rule refused every buy the strategy sent, so nothing ever traded.
        orders = result.orders
        assert len(orders) > 0 and set(orders["side"]) == {"buy"}
        assert set(orders["status"]) == {"rejected"}
        assert (orders["reason"] == "risk rule no-buys: buys are not allowed").all()
        assert result.trades.empty
        assert set(result.risk_events["rule"]) == {"no-buys"}
        assert len(result.risk_events) == len(orders)
    finally:
        sys.modules.pop("tl_docs_contrib", None)


# --- 3. the checks fail when they should -------------------------------------------------------

FAKE_SPECS = '''
"""A throwaway hookspec module."""

import pluggy

hookspec = pluggy.HookspecMarker("tradeloom")


@hookspec
def tradeloom_register_widgets(register):
    """Contribute widgets: call ``register(name, cls)`` for each."""


@hookspec(firstresult=True)
def tradeloom_run_paused(run_id, reason):
    """A run paused. ``run_id`` names it."""


@hookspec
def tradeloom_run_resumed(run_id):
    pass
'''

FAKE_PAGE = """
# Hooks

- `tradeloom_register_widgets(register)`: contribute widgets.
- `tradeloom_run_paused(run_id)`: a run paused.
"""

FAKE_TESTS = """
from tradeloom import hookimpl


@hookimpl
def tradeloom_register_widgets(register):
    register("w", object)


def test_pause(host):
    host.hook.tradeloom_run_paused(run_id="x", reason="y")


def tradeloom_run_resumed(run_id):  # not a hookimpl: does not count
    pass
"""


@pytest.fixture
def fake_specs(tmp_path: Path):
    path = tmp_path / "fake_hookspecs.py"
    path.write_text(FAKE_SPECS)
    spec = importlib.util.spec_from_file_location("fake_hookspecs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checks_report_exactly_the_problems_of_a_hookspec_module(
    fake_specs, tmp_path: Path
) -> None:
    hooks = docgen.hook_specs(fake_specs)
    assert [h.name for h in hooks] == [
        "tradeloom_register_widgets",
        "tradeloom_run_paused",
        "tradeloom_run_resumed",
    ]
    assert [h.firstresult for h in hooks] == [False, True, False]

    assert docgen.hook_problems(fake_specs) == [
        "tradeloom_run_paused: argument 'reason' is not described in its docstring "
        "(name it as ``reason``)",
        "tradeloom_run_resumed: no docstring",
    ]
    assert docgen.page_problems(fake_specs, FAKE_PAGE, "hooks.md") == [
        "tradeloom_run_paused: hooks.md does not name argument(s) reason",
        "tradeloom_run_resumed: not documented in hooks.md",
    ]
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_fake.py").write_text(FAKE_TESTS)
    assert docgen.untested_hooks(fake_specs, tests) == ["tradeloom_run_resumed"]


def test_the_generated_reference_of_a_hookspec_module_passes_its_own_page_check(
    fake_specs,
) -> None:
    page = docgen.render_hooks(fake_specs)
    assert docgen.page_problems(fake_specs, page, "hooks.md") == []
    assert "@hookspec(firstresult=True)\ndef tradeloom_run_paused(run_id, reason)" in page
    assert "*(no docstring)*" in page
    # Removing an argument's description shows in the docstring check, not just the page.
    assert docgen.hook_problems(fake_specs)[0].startswith("tradeloom_run_paused: argument")


def test_the_real_hookspecs_fail_the_checks_once_a_hook_or_argument_is_added(
    tmp_path: Path,
) -> None:
    source = Path(hookspecs.__file__).read_text(encoding="utf-8")
    source = source.replace(
        "def tradeloom_run_finish(run_id: str, mode: str, summary: dict[str, Any])",
        "def tradeloom_run_finish(run_id: str, mode: str, summary: dict[str, Any], extra: int)",
    )
    assert "extra: int" in source, "hookspecs.py changed: update this test's replacement"
    source += '\n\n@hookspec\ndef tradeloom_run_interrupted(run_id: str) -> None:\n    """Interrupted."""\n'
    path = tmp_path / "changed_hookspecs.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("changed_hookspecs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    problems = docgen.hook_problems(module)
    assert (
        "tradeloom_run_finish: argument 'extra' is not described in its docstring "
        "(name it as ``extra``)"
    ) in problems
    assert any(p.startswith("tradeloom_run_interrupted: argument 'run_id'") for p in problems)
    for page in (docgen.HOOKS_PAGE, AUTHORING_PAGE):
        assert docgen.page_problems(module, _page(page), page) == [
            f"tradeloom_run_finish: {page} does not name argument(s) extra",
            f"tradeloom_run_interrupted: not documented in {page}",
        ]
    assert docgen.untested_hooks(module, TESTS) == ["tradeloom_run_interrupted"]


# --- 4. every built-in component in the docs ---------------------------------------------------


def _builtin_specs():
    return docgen.reference_host().registry.specs()


def test_the_reference_host_has_the_kernel_and_the_first_party_plugin() -> None:
    host = docgen.reference_host()
    assert {(p.distribution, p.status) for p in host.plugins} == {
        ("tradeloom", "loaded"),
        ("tradeloom-strategies", "loaded"),
    }
    assert len(host.registry.specs()) == len(PluginHost(env={}).registry.specs())


@pytest.mark.parametrize("spec", _builtin_specs(), ids=lambda s: f"{s.kind.value}:{s.name}")
def test_every_builtin_component_is_documented(spec) -> None:
    written = "".join(_page(p) for p in KIND_PAGES[spec.kind])
    assert f"`{spec.name}`" in written or f'type = "{spec.name}"' in written, (
        f"{spec.kind.value} {spec.name!r} appears in none of {KIND_PAGES[spec.kind]}"
    )
    reference = _page(docgen.CONFIG_PAGE)
    assert f"### `{spec.name}`" in reference
    if spec.kind is Kind.RISK_RULE:
        assert f"| `{spec.name}` |" in _page("risk-controls.md"), (
            f"risk rule {spec.name!r} is not mapped to a requirement in risk-controls.md"
        )


# --- 5. the generated pages are up to date -----------------------------------------------------


def test_the_generated_pages_are_up_to_date() -> None:
    stale = docgen.stale_pages(DOCS)
    assert stale == {}, "run `uv run python -m tradeloom.docgen --write`:\n" + "\n".join(
        stale.values()
    )


def test_the_check_command_reports_a_stale_page(tmp_path: Path, capsys) -> None:
    docs = tmp_path / "docs"
    assert docgen.main(["--write", "--docs-dir", str(docs)]) == 0
    assert sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md")) == sorted(
        docgen.RENDERERS
    )
    assert docgen.main(["--check", "--docs-dir", str(docs)]) == 0
    page = docs / docgen.CLI_PAGE
    page.write_text(page.read_text().replace("Run the shipped demo", "Run the demo"))
    capsys.readouterr()
    assert docgen.main(["--check", "--docs-dir", str(docs)]) == 1
    out, err = capsys.readouterr()
    assert "-Run the demo: " in out and "+Run the shipped demo: " in out
    assert f"{docgen.CLI_PAGE} is stale" in err


def test_the_cli_reference_covers_every_command_and_option() -> None:
    import typer

    from tradeloom.cli.main import app

    text = _page(docgen.CLI_PAGE)
    command = typer.main.get_command(app)

    def walk(group, path):
        for name, cmd in group.commands.items():
            yield (*path, name), cmd
            if hasattr(cmd, "commands"):
                yield from walk(cmd, (*path, name))

    commands = list(walk(command, ("tradeloom",)))
    assert len(commands) > 20
    for path, cmd in commands:
        section = text.split(f"`{' '.join(path)}` {{#", 1)
        assert len(section) == 2, f"{' '.join(path)} has no section"
        body = section[1].split("\n#", 1)[0]
        for param in cmd.params:
            if param.param_type_name == "option":
                assert f"`{param.opts[0]}`" in body, f"{' '.join(path)} {param.opts[0]}"


def test_the_config_reference_covers_every_top_level_key() -> None:
    from tradeloom.config import DeploymentConfig

    text = _page(docgen.CONFIG_PAGE)
    top = text.split("## Top level", 1)[1].split("\n## ", 1)[0]
    for key in DeploymentConfig.model_fields:
        assert f"| `{key}` |" in top, key


# --- 6. the tutorial's commands run ------------------------------------------------------------

SKIP_COMMANDS = [
    re.compile(r"^\s*(python3?\s+-m\s+)?pip\s+install\s+uv\s*$"),
    re.compile(r"^\s*uv\s+run\s+pytest\b"),
]

# `uv run X` runs X in this environment: the commands are those a user types in the clone.
PREAMBLE = """\
set -euo pipefail
uv() { if [ "$1" = run ]; then shift; "$@"; else command uv "$@"; fi; }
"""


def shell_commands(markdown: str) -> str:
    """The page's ```bash blocks as one script, without the bootstrap and test commands."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M):
        for line in block.splitlines():
            kept = [
                seg for seg in line.split(" && ") if not any(p.match(seg) for p in SKIP_COMMANDS)
            ]
            if kept:
                lines.append(" && ".join(kept))
    return "\n".join(lines) + "\n"


def test_shell_commands_drop_only_the_bootstrap_and_the_test_run() -> None:
    page = "```bash\npython -m pip install uv && uv run tradeloom demo\nuv run pytest\n```\n"
    assert shell_commands(page) == "uv run tradeloom demo\n"


def _run_page(page: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = PREAMBLE + shell_commands(_page(page))
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "TRADELOOM_STORE": f"sqlite:///{cwd / 'journal.db'}",
        "TRADELOOM_SESSIONS": str(cwd / "sessions"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_the_getting_started_commands_run(tmp_path: Path) -> None:
    done = _run_page("getting-started.md", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    metrics = json.loads((tmp_path / "tradeloom-demo" / "metrics.json").read_text())
    assert metrics["num_trades"] > 0
    assert (tmp_path / "tradeloom-demo" / "report.html").stat().st_size > 10_000
    assert (tmp_path / "journal.db").exists()


@pytest.mark.slow
def test_the_tutorial_commands_run(tmp_path: Path) -> None:
    done = _run_page("tutorial.md", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    work = tmp_path / "my-first-strategy"
    # 2. the strategy written in step 1 traded in its Python backtest
    trades = re.search(r"trades: (\d+), sharpe: (-?[\d.]+)", done.stdout)
    assert trades and int(trades.group(1)) > 0
    assert (work / "buy-the-dip.html").exists()
    # 3. the deployment's backtest
    metrics = json.loads((work / "out" / "backtest" / "metrics.json").read_text())
    assert metrics["num_trades"] > 0
    # 4. the optimisation ran the whole grid
    result = json.loads((work / "out" / "optimize" / "result.json").read_text())
    text = json.dumps(result)
    assert "fast" in text and "slow" in text
    assert sum(1 for _ in (work / "out" / "optimize" / "trials.csv").open()) - 1 == 4
    # 5. the paper session finished
    status = json.loads((tmp_path / "sessions" / "tutorial" / "status.json").read_text())
    assert status["status"] == "finished"
    assert status["bars"] == 252


# --- 7. mkdocs build --strict --------------------------------------------------------------------


def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "hooks" / "index.html").exists()
    assert (tmp_path / "site" / "tutorial" / "index.html").exists()


def test_every_docs_page_is_in_the_nav() -> None:
    nav_text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    missing = [p for p in pages if not re.search(rf":\s*{re.escape(p)}\s*$", nav_text, re.M)]
    assert missing == [], f"add these pages to the nav in mkdocs.yml: {missing}"
