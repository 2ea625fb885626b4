"""Issue 6 acceptance: "a canary test runs a deployment with canary API keys and finds them in
no table, log or output file".

A deployment whose data source, broker and strategy each take a ``SecretStr`` (supplied through
``${env:...}``, like ``tests/configs/live_venue.toml``) runs through the ``tradeloom backtest``
command with a journal store, loguru at DEBUG into a file and the standard library's logging
captured. The canaries must reach the components (checked) and appear in no row of any table of
the store (every table, every column; for SQLite also the raw database files), no output file,
no log line and nothing the command printed. Once for a run that finishes, once for one that
fails (its error and failure record are journaled too).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from loguru import logger
from pydantic import SecretStr
from test_store import store_url_for

from tradeloom import plugins
from tradeloom.cli.main import main
from tradeloom.components import Kind
from tradeloom.data.datasets import DatasetSource
from tradeloom.execution import SimulatedBroker
from tradeloom.plugins import ComponentSpec, PluginHost
from tradeloom_strategies.sma_crossover import SmaCrossover

CANARIES = {
    "TL_CANARY_DATA_KEY": "CANARY-DATA-KEY-5f3a91",
    "TL_CANARY_BROKER_KEY": "CANARY-BROKER-KEY-b7e042",
    "TL_CANARY_SIGNAL_TOKEN": "CANARY-SIGNAL-TOKEN-c19d6e",
}
MASK = "**********"


# --- the test plugin: backtestable components that take secrets ---------------------------------


class CanaryDataset(DatasetSource):
    """Bundled data, served as if by a vendor that wants an API key."""

    class Params(DatasetSource.Params):
        api_key: SecretStr
        """The vendor's API key."""

    params: CanaryDataset.Params
    seen: ClassVar[list[str]] = []

    def load(self, start: Any = None, end: Any = None) -> Any:
        type(self).seen.append(self.params.api_key.get_secret_value())
        return super().load(start, end)


class CanaryBroker(SimulatedBroker):
    """The simulated broker, as if it were a venue account with an API key."""

    class Params(SimulatedBroker.Params):
        api_key: SecretStr
        """API key of the venue account."""
        account: str = "main"
        """Account name."""

    params: CanaryBroker.Params
    seen: ClassVar[list[str]] = []

    def start(self, **kwargs: Any) -> None:
        type(self).seen.append(self.params.api_key.get_secret_value())
        super().start(**kwargs)


class CanarySma(SmaCrossover):
    """The SMA crossover, posting its signals to a webhook that wants a token."""

    class Params(SmaCrossover.Params):
        signal_token: SecretStr
        """Token of the signal webhook."""
        explode_at: int = 0
        """Raise on this bar (0: never), to journal a failed run."""

    params: CanarySma.Params
    seen: ClassVar[list[str]] = []

    def on_start(self, ctx: Any) -> None:
        type(self).seen.append(self.params.signal_token.get_secret_value())
        self._bars = 0
        super().on_start(ctx)

    def on_bar(self, ctx: Any, bar: Any) -> None:
        self._bars += 1
        if self._bars == self.params.explode_at:
            raise RuntimeError("the signal webhook refused the request")
        super().on_bar(ctx, bar)


TEST_COMPONENTS = [
    (Kind.DATA_SOURCE, "canary-dataset", CanaryDataset),
    (Kind.BROKER, "canary-broker", CanaryBroker),
    (Kind.STRATEGY, "canary-sma", CanarySma),
]


class CanaryHost(PluginHost):
    """The installed plugins plus the test plugin (what ``tradeloom backtest`` builds)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for kind, name, cls in TEST_COMPONENTS:
            doc = (cls.__doc__ or "").strip()
            spec = ComponentSpec(kind, name, cls, "tradeloom-test", "1.0", "tradeloom-test:t", doc)
            self.registry.add(spec)


DEPLOYMENT = """
# A backtest whose data vendor, venue and signal webhook keys come from the environment.
[data]
type = "canary-dataset"
params = { name = "us-stocks-daily", symbols = ["IBM", "MSFT"], api_key = "${env:TL_CANARY_DATA_KEY}" }

[strategy]
type = "canary-sma"
params = { fast = 5, slow = 20, quantity = 10, signal_token = "${env:TL_CANARY_SIGNAL_TOKEN}", explode_at = EXPLODE }

[broker]
type = "canary-broker"
params = { api_key = "${env:TL_CANARY_BROKER_KEY}", account = "${env:TL_CANARY_ACCOUNT:-main}" }

[[risk]]
type = "max-order-notional"
params = { max_notional = 100000 }

[run]
start = "2010-01-01"
end = "2011-12-31"
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url_for(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Every loguru record of tradeloom at DEBUG, serialised (message, extra, exception)."""
    path = tmp_path / "debug.log"
    sink = logger.add(path, level="DEBUG", serialize=True, backtrace=True, diagnose=True)
    logger.enable("tradeloom")
    try:
        yield path
    finally:
        logger.disable("tradeloom")
        logger.remove(sink)


def dump_store(url: str) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    """Every row of every table in the store's database (schema), every column, as text."""
    engine = sa.create_engine(url)
    tables: dict[str, list[dict[str, Any]]] = {}
    texts: list[str] = []
    try:
        with engine.connect() as conn:
            for name in sa.inspect(conn).get_table_names():
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                rows = [dict(r) for r in conn.execute(sa.select(table)).mappings()]
                tables[name] = rows
                for row in rows:
                    for column, value in row.items():
                        texts.append(f"{name}.{column}={value!s}")
                        texts.append(json.dumps(value, default=str, ensure_ascii=False))
    finally:
        engine.dispose()
    return texts, tables


def leaks(text: str) -> list[str]:
    return [secret for secret in CANARIES.values() if secret in text]


@pytest.mark.parametrize("outcome", ["finished", "failed"])
def test_canary_secrets_reach_no_table_log_or_output_file(
    outcome: str,
    store_url: str,
    debug_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(plugins, "PluginHost", CanaryHost)  # what the CLI builds
    for _, _, cls in TEST_COMPONENTS:
        monkeypatch.setattr(cls, "seen", [])
    caplog.set_level(logging.DEBUG)
    config = tmp_path / "canary.toml"
    config.write_text(DEPLOYMENT.replace("EXPLODE", "0" if outcome == "finished" else "30"))
    out = tmp_path / "out"

    code = main(["backtest", str(config), "--store", store_url, "--out", str(out), "--debug"]
                if outcome == "finished" else
                ["backtest", str(config), "--store", store_url, "--out", str(out)])  # fmt: skip
    printed = capfd.readouterr()

    # The secrets did reach the components (else this test would prove nothing).
    expected = [CANARIES["TL_CANARY_DATA_KEY"]], [CANARIES["TL_CANARY_SIGNAL_TOKEN"]]
    assert (CanaryDataset.seen, CanarySma.seen) == expected
    assert CanaryBroker.seen == [CANARIES["TL_CANARY_BROKER_KEY"]]

    texts, tables = dump_store(store_url)
    (run,) = tables["runs"]
    if outcome == "finished":
        assert code == 0, printed.err
        assert f"Journal: run {run['id']}" in printed.out
        assert run["status"] == "finished"
        assert len(tables["orders"]) > 0 and len(tables["fills"]) > 0
        assert {p.name for p in out.iterdir()} >= {"metrics.json", "report.html", "orders.csv"}
    else:
        assert code == 1, printed.err
        assert "the signal webhook refused the request" in printed.err
        assert run["status"] == "failed"
        assert "the signal webhook refused the request" in run["error"]
    # The secrets were journaled masked: the config is there, the values are not.
    (deployment,) = tables["deployments"]
    config = deployment["config"]
    params = {k: config[k]["params"] for k in ("data", "broker")}
    (params["strategy"],) = [s["params"] for s in config["strategies"]]
    assert (params["data"]["api_key"], params["broker"]["api_key"]) == (MASK, MASK)
    assert params["strategy"]["signal_token"] == MASK
    assert len(tables["audit_log"]) >= 2

    assert leaks("\n".join(texts)) == [], "a secret is in the store"
    if store_url.startswith("sqlite:///"):
        database = Path(store_url.removeprefix("sqlite:///"))
        files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
        assert database in files
        for path in files:  # the raw pages, WAL included: not even in a free page
            raw = path.read_bytes()
            assert [s for s in CANARIES.values() if s.encode() in raw] == [], path.name

    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert (len(written) > 0) == (outcome == "finished")
    for path in written:
        raw = path.read_bytes()
        assert [s for s in CANARIES.values() if s.encode() in raw] == [], path.name

    log_text = debug_log.read_text(encoding="utf-8")
    assert "creating the journal schema" in log_text  # the sink did capture tradeloom's logs
    assert leaks(log_text) == [], "a secret is in the loguru log"
    assert leaks(caplog.text) == [], "a secret is in the standard library's log"
    assert leaks(printed.out) == [] and leaks(printed.err) == [], "the command printed a secret"
