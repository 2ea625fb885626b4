"""Plugin discovery: real installed distributions, failure isolation, duplicates, switches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from tradeloom.components import Kind
from tradeloom.errors import PluginError
from tradeloom.plugins import PluginHost, UnknownComponent

HELLO = '''
from tradeloom import hookimpl
from tradeloom.components import Params
from tradeloom.strategy import Strategy


class BuyOnce(Strategy):
    """Buys `quantity` units of every symbol on its first bar and holds."""

    class Params(Params):
        quantity: int = 1
        """Units to buy."""

    def on_bar(self, ctx, bar):
        if ctx.bar_count(bar.symbol) == 1:
            ctx.buy(bar.symbol, self.params.quantity)


class Crash(Strategy):
    """Raises on its third bar."""

    def on_bar(self, ctx, bar):
        if ctx.bar_count(bar.symbol) == 3:
            raise KeyError("missing indicator")


@hookimpl
def tradeloom_register_strategies(register):
    register("hello-buy-once", BuyOnce)
    register("hello-crash", Crash)
'''

BROKEN = """
raise ImportError("this plugin is broken on purpose")
"""

DUPE = '''
from tradeloom import hookimpl
from tradeloom.strategy import Strategy


class Impostor(Strategy):
    """Same name as tradeloom-hello's strategy."""


@hookimpl
def tradeloom_register_strategies(register):
    register("hello-buy-once", Impostor)
'''


FLATFEE = '''
from pydantic import Field

from tradeloom import hookimpl
from tradeloom.components import Params
from tradeloom.execution.cost_models import CostModel


class FlatFee(CostModel):
    """A flat commission per fill."""

    class Params(Params):
        amount: float = Field(default=1.0, ge=0)
        """Commission per fill, in account currency."""

    def commission(self, trade):
        return self.params.amount

    def describe(self):
        return f"Commission: {self.params.amount:g} per fill (tradeloom-flatfee)."


@hookimpl
def tradeloom_register_cost_models(register):
    register("flat-fee", FlatFee)
'''


HALFVOL = '''
from tradeloom import hookimpl
from tradeloom.execution.fills import FillModel


class HalfVolume(FillModel):
    """Fills at most half of each bar's volume."""

    def capacity(self, bar):
        return 0.5 * bar.volume


@hookimpl
def tradeloom_register_fill_models(register):
    register("half-volume", HalfVolume)
'''


def _write_dist(root: Path, dist: str, module: str, source: str, version: str) -> Path:
    pkg = root / dist
    (pkg / "src" / module).mkdir(parents=True)
    (pkg / "src" / module / "__init__.py").write_text(textwrap.dedent(source))
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [project]
        name = "{dist}"
        version = "{version}"
        requires-python = ">=3.11"

        [project.entry-points.tradeloom]
        {module} = "{module}"

        [build-system]
        requires = ["uv_build>=0.8,<1"]
        build-backend = "uv_build"
        """)
    )
    return pkg


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv must be on PATH to build the throwaway distributions"
    return uv


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build five throwaway distributions and install them into two target folders."""
    root = tmp_path_factory.mktemp("dists")
    good = _write_dist(root, "tradeloom-hello", "tradeloom_hello", HELLO, "1.2.3")
    broken = _write_dist(root, "tradeloom-broken", "tradeloom_broken", BROKEN, "0.0.1")
    dupe = _write_dist(root, "tradeloom-dupe", "tradeloom_dupe", DUPE, "9.9.9")
    fee = _write_dist(root, "tradeloom-flatfee", "tradeloom_flatfee", FLATFEE, "0.3.0")
    fills = _write_dist(root, "tradeloom-halfvol", "tradeloom_halfvol", HALFVOL, "0.1.0")
    site_a, site_b = root / "site-a", root / "site-b"
    for target, pkgs in ((site_a, [good, broken, fee, fills]), (site_b, [dupe])):
        subprocess.run(
            [_uv(), "pip", "install", "--quiet", "--python", sys.executable, "--no-deps",
             "--target", str(target), *map(str, pkgs)],
            check=True,
        )  # fmt: skip
    return {"a": site_a, "b": site_b}


def _cli(args: list[str], paths: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
    env.pop("TRADELOOM_STRICT_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "tradeloom", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


def test_installed_plugin_is_listed_and_runs_while_a_broken_one_is_isolated(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    listing = _cli(["plugins", "list", "--json"], [sites["a"]], tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    hello = [r for r in rows if r["name"] == "hello-buy-once"]
    assert hello == [
        {
            "kind": "strategy",
            "name": "hello-buy-once",
            "distribution": "tradeloom-hello",
            "version": "1.2.3",
            "status": "loaded",
            "error": None,
            "capabilities": "backtest/paper/live, multi-symbol, short",
            "description": "Buys `quantity` units of every symbol on its first bar and holds.",
        }
    ]
    (broken,) = [r for r in rows if r["distribution"] == "tradeloom-broken"]
    assert broken["status"] == "failed"
    assert broken["version"] == "0.0.1"
    assert broken["error"] == "ImportError: this plugin is broken on purpose"
    assert any(r["name"] == "sma-crossover" and r["status"] == "loaded" for r in rows)

    config = tmp_path / "hello.toml"
    config.write_text(
        textwrap.dedent("""
        [data]
        type = "dataset"
        params = { name = "us-stocks-daily", symbols = ["IBM"] }
        [strategy]
        type = "hello-buy-once"
        params = { quantity = 7 }
        [run]
        start = "2010-01-01"
        end = "2010-12-31"
        """)
    )
    run = _cli(
        ["backtest", str(config), "--out", str(tmp_path / "out"), "--json"], [sites["a"]], tmp_path
    )
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout)
    assert metrics["num_fills"] == 1
    trades_or_fills = (tmp_path / "out" / "orders.csv").read_text().splitlines()
    assert len(trades_or_fills) == 2 and ",filled," in trades_or_fills[1]
    assert ",7.0," in trades_or_fills[1]


def test_a_plugin_cost_model_is_listed_and_charged_in_a_backtest(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    listing = _cli(["plugins", "list", "--json"], [sites["a"]], tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert [r for r in rows if r["name"] == "flat-fee"] == [
        {
            "kind": "cost_model",
            "name": "flat-fee",
            "distribution": "tradeloom-flatfee",
            "version": "0.3.0",
            "status": "loaded",
            "error": None,
            "capabilities": "backtest/paper, multi-symbol",
            "description": "A flat commission per fill.",
        }
    ]
    assert {r["name"] for r in rows if r["kind"] == "cost_model"} >= {"flat-fee", "spread"}
    table = _cli(["plugins", "list"], [sites["a"]], tmp_path)
    assert "cost_model" in table.stdout and "flat-fee" in table.stdout

    config = tmp_path / "fee.toml"
    config.write_text(
        textwrap.dedent("""
        [data]
        type = "dataset"
        params = { name = "us-stocks-daily", symbols = ["IBM"] }
        [strategy]
        type = "hello-buy-once"
        params = { quantity = 7 }
        [[costs]]
        type = "flat-fee"
        params = { amount = 2.5 }
        [run]
        start = "2010-01-01"
        end = "2010-12-31"
        """)
    )
    runs = {}
    for label, extra in (("fee", []), ("free", ["--set", "costs=[]"])):
        out = tmp_path / label
        run = _cli(
            ["backtest", str(config), "--out", str(out), "--json", *extra], [sites["a"]], tmp_path
        )
        assert run.returncode == 0, run.stderr
        runs[label] = json.loads(run.stdout)
    fee, free = runs["fee"], runs["free"]
    assert fee["num_fills"] == free["num_fills"] == 1
    # one fill at the same price: the plugin's 2.5 is the only difference
    assert fee["final_equity"] == pytest.approx(free["final_equity"] - 2.5, abs=1e-6)
    assert fee["assumptions"][-3] == "Commission: 2.5 per fill (tradeloom-flatfee)."
    assert "Commission: 2.5 per fill (tradeloom-flatfee)." not in free["assumptions"]
    resolved = (tmp_path / "fee" / "config.resolved.toml").read_text()
    assert 'type = "flat-fee"' in resolved and "amount = 2.5" in resolved


def test_a_plugin_fill_model_is_listed(sites: dict[str, Path], tmp_path: Path) -> None:
    listing = _cli(["plugins", "list", "--json"], [sites["a"]], tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert [r for r in rows if r["name"] == "half-volume"] == [
        {
            "kind": "fill_model",
            "name": "half-volume",
            "distribution": "tradeloom-halfvol",
            "version": "0.1.0",
            "status": "loaded",
            "error": None,
            "capabilities": "backtest/paper, multi-symbol",
            "description": "Fills at most half of each bar's volume.",
        }
    ]
    assert {r["name"] for r in rows if r["kind"] == "fill_model"} >= {
        "half-volume", "next-open", "same-close", "volume-participation", "latency",
    }  # fmt: skip
    table = _cli(["plugins", "list"], [sites["a"]], tmp_path)
    assert "fill_model" in table.stdout and "half-volume" in table.stdout


def test_a_strategy_that_raises_exits_1_with_one_line(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "crash.toml"
    config.write_text(
        '[data]\ntype = "dataset"\nparams = { name = "us-stocks-daily", symbols = ["IBM"] }\n'
        '[strategy]\nid = "c1"\ntype = "hello-crash"\n[run]\nstart = "2010-01-04"\n'
    )
    run = _cli(["backtest", str(config), "--out", str(tmp_path / "o")], [sites["a"]], tmp_path)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "strategy 'c1' (Crash) raised in on_bar at 2010-01-06" in lines[0]
    assert "KeyError" in lines[0] and "Traceback" not in run.stderr


def test_duplicate_component_name_is_an_error_naming_both_distributions(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    listing = _cli(["plugins", "list", "--json"], [sites["a"], sites["b"]], tmp_path)
    rows = json.loads(listing.stdout)
    failed = [r for r in rows if r["status"] == "failed" and "duplicate" in (r["error"] or "")]
    assert len(failed) == 1
    message = failed[0]["error"]
    assert "tradeloom-hello 1.2.3" in message and "tradeloom-dupe 9.9.9" in message
    assert "'hello-buy-once'" in message

    config = tmp_path / "dupe.toml"
    config.write_text(
        '[data]\ntype = "dataset"\nparams = { name = "us-stocks-daily", symbols = ["IBM"] }\n'
        '[strategy]\ntype = "hello-buy-once"\n'
    )
    run = _cli(
        ["backtest", str(config), "--out", str(tmp_path / "o")], [sites["a"], sites["b"]], tmp_path
    )
    assert run.returncode == 2
    assert "tradeloom-hello 1.2.3" in run.stderr and "tradeloom-dupe 9.9.9" in run.stderr
    assert "Traceback" not in run.stderr


def test_strict_mode_turns_a_broken_plugin_into_an_error(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(sites["a"]), "TRADELOOM_STRICT_PLUGINS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "tradeloom", "plugins", "list"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "tradeloom-broken" in run.stderr and "broken on purpose" in run.stderr


# --- in-process: fake entry points --------------------------------------------------------------


def _ep(name: str, module: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=module, group="tradeloom")


@pytest.fixture
def fake_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tl_good.py").write_text(HELLO)
    (tmp_path / "tl_half.py").write_text(
        HELLO.replace('register("hello-buy-once", BuyOnce)',
                      'register("half-ok", BuyOnce)\n    register("Bad Name", BuyOnce)')
    )  # fmt: skip
    (tmp_path / "tl_notstrategy.py").write_text(
        "from tradeloom import hookimpl\n\n@hookimpl\ndef tradeloom_register_strategies(register):\n"
        "    register('not-a-strategy', dict)\n"
    )
    (tmp_path / "tl_unknownhook.py").write_text(
        "from tradeloom import hookimpl\n\n@hookimpl\ndef tradeloom_register_widgets(register):\n"
        "    pass\n"
    )
    yield tmp_path
    for mod in ("tl_good", "tl_half", "tl_notstrategy", "tl_unknownhook"):
        sys.modules.pop(mod, None)


def test_a_plugin_with_one_bad_component_contributes_nothing(fake_modules: Path) -> None:
    host = PluginHost(entry_points=[_ep("half", "tl_half"), _ep("good", "tl_good")], env={})
    status = {p.name: p for p in host.plugins}
    assert status["half"].status == "failed"
    assert "invalid strategy name 'Bad Name'" in status["half"].error
    assert status["good"].status == "loaded"
    assert "half-ok" not in host.registry.names(Kind.STRATEGY)  # rolled back
    assert "hello-buy-once" in host.registry.names(Kind.STRATEGY)


def test_wrong_class_and_unknown_hook_are_reported(fake_modules: Path) -> None:
    host = PluginHost(
        entry_points=[_ep("ns", "tl_notstrategy"), _ep("uh", "tl_unknownhook")], env={}
    )
    errors = {p.name: p.error for p in host.plugins}
    assert "must be a subclass of tradeloom.strategy.base.Strategy" in errors["ns"]
    assert "unknown hook 'tradeloom_register_widgets'" in errors["uh"]


def test_disable_switch_skips_a_plugin(fake_modules: Path) -> None:
    host = PluginHost(
        entry_points=[_ep("good", "tl_good")], env={"TRADELOOM_DISABLE_PLUGINS": "x, good"}
    )
    assert [(p.name, p.status) for p in host.plugins if p.name == "good"] == [("good", "disabled")]
    with pytest.raises(UnknownComponent) as info:
        host.registry.get(Kind.STRATEGY, "hello-buy-once")
    assert "installed:" in str(info.value) and "uv pip install" in str(info.value)


def test_a_cost_model_must_subclass_cost_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tl_notcost.py").write_text(
        "from tradeloom import hookimpl\nfrom tradeloom.risk import RiskRule\n\n"
        "@hookimpl\ndef tradeloom_register_cost_models(register):\n"
        "    register('not-a-cost-model', RiskRule)\n"
    )
    try:
        host = PluginHost(entry_points=[_ep("nc", "tl_notcost")], env={})
    finally:
        sys.modules.pop("tl_notcost", None)
    (record,) = [p for p in host.plugins if p.name == "nc"]
    assert record.status == "failed"
    assert "cost_model 'not-a-cost-model' must be a subclass of " in record.error
    assert "tradeloom.execution.cost_models.CostModel" in record.error


def test_a_fill_model_must_subclass_fill_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tl_notfill.py").write_text(
        "from tradeloom import hookimpl\nfrom tradeloom.execution.cost_models import CostModel\n\n"
        "@hookimpl\ndef tradeloom_register_fill_models(register):\n"
        "    register('not-a-fill-model', CostModel)\n"
    )
    try:
        host = PluginHost(entry_points=[_ep("nf", "tl_notfill")], env={})
    finally:
        sys.modules.pop("tl_notfill", None)
    (record,) = [p for p in host.plugins if p.name == "nf"]
    assert record.status == "failed"
    assert "fill_model 'not-a-fill-model' must be a subclass of " in record.error
    assert "tradeloom.execution.fills.FillModel" in record.error


def test_strict_switch_raises_in_process(fake_modules: Path) -> None:
    with pytest.raises(PluginError, match="TRADELOOM_STRICT_PLUGINS"):
        PluginHost(
            entry_points=[_ep("uh", "tl_unknownhook")], env={"TRADELOOM_STRICT_PLUGINS": "1"}
        )


def test_builtins_come_through_the_same_hooks() -> None:
    host = PluginHost(entry_points=[], env={})
    (builtin,) = [p for p in host.plugins if p.distribution == "tradeloom"]
    assert builtin.status == "loaded"
    assert set(builtin.components) >= {
        (Kind.DATA_SOURCE, "csv"), (Kind.DATA_SOURCE, "parquet"), (Kind.DATA_SOURCE, "dataset"),
        (Kind.BROKER, "simulated"),
        (Kind.COST_MODEL, "percent"), (Kind.COST_MODEL, "per-unit"), (Kind.COST_MODEL, "tiered"),
        (Kind.COST_MODEL, "maker-taker"), (Kind.COST_MODEL, "spread"),
        (Kind.COST_MODEL, "borrow-fee"), (Kind.COST_MODEL, "cash-interest"),
        (Kind.FILL_MODEL, "next-open"), (Kind.FILL_MODEL, "same-close"),
        (Kind.FILL_MODEL, "volume-participation"), (Kind.FILL_MODEL, "latency"),
    }  # fmt: skip
    assert host.registry.get(Kind.BROKER, "simulated").distribution == "tradeloom"
    from tradeloom.execution.cost_models import BUILTIN_COST_MODELS

    assert {s.name: s.cls for s in host.registry.specs(Kind.COST_MODEL)} == BUILTIN_COST_MODELS
    from tradeloom.execution.fills import BUILTIN_FILL_MODELS

    assert {s.name: s.cls for s in host.registry.specs(Kind.FILL_MODEL)} == BUILTIN_FILL_MODELS


def test_no_module_level_host() -> None:
    import tradeloom.plugins as plugins_module

    assert not [v for v in vars(plugins_module).values() if isinstance(v, PluginHost)]
