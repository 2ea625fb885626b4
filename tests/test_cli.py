"""The CLI end to end: the demo, determinism, the report in a browser, one-line errors."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tradeloom.cli.main import main
from tradeloom.report.outputs import OUTPUT_FILES

from browser import chromium_path, render_dom
from helpers import IBM_DEPLOYMENT


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo")
    first, second = root / "first", root / "second"
    assert main(["demo", "--out", str(first)]) == 0
    assert main(["demo", "--out", str(second)]) == 0
    return first, second


def test_demo_writes_every_output(demo_runs: tuple[Path, Path]) -> None:
    out = demo_runs[0]
    for name in OUTPUT_FILES:
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    trades = (out / "trades.csv").read_text().splitlines()
    assert metrics["num_trades"] == len(trades) - 1 > 20
    assert metrics["initial_equity"] == 100_000
    orders = (out / "orders.csv").read_text()
    assert orders.count(",filled,") == metrics["num_fills"]
    assert 'name = "us-stocks-daily"' in (out / "config.resolved.toml").read_text()


def test_demo_is_deterministic(demo_runs: tuple[Path, Path]) -> None:
    first, second = demo_runs
    for name in ("trades.csv", "metrics.json", "orders.csv", "equity.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_demo_report_renders_in_chromium(demo_runs: tuple[Path, Path]) -> None:
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    dom, errors = render_dom(demo_runs[0] / "report.html")
    assert errors == []
    assert 'id="equity-plot"' in dom
    plot = dom[dom.index('id="equity-plot"') :]
    assert "main-svg" in plot[:20000]  # plotly drew the figure
    assert "Market orders fill at the next bar" in dom


def test_json_flag_prints_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "metrics.json").read_text())


GOOD = IBM_DEPLOYMENT

MALFORMED = [
    ("unknown top-level key", GOOD + "colour = 1\n", [], "colour"),
    ("unknown run key", GOOD.replace('end = "2010-06-30"', 'end = "2010-06-30"\ncash = 5'), [], "run.cash"),
    ("wrong type", GOOD.replace("fast = 5", 'fast = "five"'), [], "strategy.params.fast"),
    ("unknown strategy type", GOOD.replace('"sma-crossover"', '"sma-crossovr"'), [], "strategy.type"),
    ("unknown data type", GOOD.replace('type = "dataset"', 'type = "ftp"'), [], "data.type"),
    ("negative cash", GOOD + "", ["--set", "run.initial_cash=-100"], "run.initial_cash"),
    ("end before start", GOOD.replace('end = "2010-06-30"', 'end = "2009-06-30"'), [], "run.end"),
    ("bad --set path", GOOD, ["--set", "strategy.params.fast.deeper=3"], "strategy.params.fast"),
    ("--set without =", GOOD, ["--set", "strategy.params.fast"], "--set"),
    ("missing env var", GOOD.replace('"IBM"', '"${env:TL_TEST_NOT_SET}"'), [], "TL_TEST_NOT_SET"),
    ("missing data file", GOOD.replace('type = "dataset"\nparams = { name = "us-stocks-daily", symbols = ["IBM"] }',
                                       'type = "csv"\nparams = { path = "no/such/file.csv" }'), [], "data.params.path"),
    ("fast >= slow", GOOD.replace("fast = 5", "fast = 50"), [], "strategy.params"),
    ("unknown dataset", GOOD.replace("us-stocks-daily", "moon-prices"), [], "data.params.name"),
    ("unknown symbol", GOOD.replace('"IBM"', '"ZZZZ"'), [], "ZZZZ"),
    ("benchmark not in data", GOOD + 'benchmark = "SPY"\n', [], "run.benchmark"),
    ("period without data", GOOD.replace("2010-01-01", "2030-01-01").replace("2010-06-30", "2031-01-01"), [], "run.start"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "text", "extra", "field"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_config_exits_2_with_one_line(
    case: str, text: str, extra: list[str], field: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("TL_TEST_NOT_SET", raising=False)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "deploy.toml"
    config.write_text(textwrap.dedent(text))
    code = main(["backtest", str(config), "--out", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert field in lines[0], err
    assert "Traceback" not in err


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    config = tmp_path / "deploy.toml"
    config.write_text(GOOD.replace("fast = 5", 'fast = "five"'))
    with pytest.raises(Exception, match=r"strategy\.params\.fast"):
        main(["backtest", str(config), "--debug"])


def test_config_validate_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "deploy.toml"
    config.write_text(GOOD)
    assert main(["config", "validate", str(config)]) == 0
    assert "OK" in capsys.readouterr().out
