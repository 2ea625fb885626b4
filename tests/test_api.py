"""The Python API and the lifecycle hooks observers receive."""

from __future__ import annotations

from pathlib import Path

import pytest

import tradeloom
from tradeloom.errors import RunError
from tradeloom.plugins import PluginHost

DEPLOY = """
[data]
type = "dataset"
params = { name = "us-stocks-daily", symbols = ["IBM", "MSFT"] }
[strategy]
id = "x"
type = "sma-crossover"
params = { fast = 10, slow = 40, quantity = 20 }
[run]
start = "2009-01-01"
end = "2010-12-31"
benchmark = "IBM"
"""


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []  # type: ignore[type-arg]

    @tradeloom.hookimpl
    def tradeloom_run_start(self, run_id: str, mode: str, config: dict) -> None:  # type: ignore[type-arg]
        self.events.append(("start", run_id, config))

    @tradeloom.hookimpl
    def tradeloom_run_finish(self, run_id: str, mode: str, summary: dict) -> None:  # type: ignore[type-arg]
        self.events.append(("finish", run_id, summary))


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(DEPLOY)
    return path


def test_backtest_from_python_with_overrides_and_observer(deploy: Path) -> None:
    host = PluginHost()
    observer = Observer()
    host.pm.register(observer)
    result = tradeloom.backtest(deploy, overrides={"strategy.params.fast": 5}, host=host)

    assert [e[0] for e in observer.events] == ["start", "finish"]
    start, finish = observer.events
    assert start[1] == finish[1] == result.run_id
    assert start[2]["strategies"][0]["params"]["fast"] == 5
    assert finish[2]["status"] == "completed"
    assert finish[2]["metrics"]["num_trades"] == result.metrics.num_trades == len(result.trades)

    assert set(result.trades["symbol"]) == {"IBM", "MSFT"}
    assert (result.trades["quantity"] == 20).all()
    assert result.equity.index.tz is not None
    assert result.metrics.beta is not None  # benchmark configured
    assert result.benchmark is not None and result.benchmark.name == "IBM"
    assert "Total return" in repr(result) or "total return" in repr(result)
    assert "<table>" in result._repr_html_()


def test_failed_run_is_reported_to_observers(deploy: Path) -> None:
    host = PluginHost()
    observer = Observer()
    host.pm.register(observer)

    class Exploding(tradeloom.Strategy):
        def on_bar(self, ctx, bar):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    from tradeloom.data import DatasetSource

    with pytest.raises(RunError, match="boom"):
        tradeloom.run_backtest(
            DatasetSource(name="us-stocks-daily", symbols=["IBM"]),
            Exploding(),
            start="2010-01-01",
            end="2010-02-01",
            host=host,
        )
    assert observer.events[-1][2] == {"status": "failed", "error": observer.events[-1][2]["error"]}
    assert "boom" in observer.events[-1][2]["error"]
