"""The deployment config: composition, overrides, interpolation, validation, secrets, schema."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import pytest
from pydantic import Field, SecretStr
from typer.testing import CliRunner

from tradeloom.cli import config_cmd
from tradeloom.components import Capabilities, Component, EmptyParams, Kind, Mode, Params
from tradeloom.config import (
    DeploymentConfig,
    ResolvedDeployment,
    RunConfig,
    json_schema,
    load_deployment,
    load_raw,
    resolve,
)
from tradeloom.errors import ConfigError
from tradeloom.plugins import ComponentSpec, PluginHost

CONFIGS = Path(__file__).parent / "configs"
CANARY = "CANARY-KEY-123"
ALL_MODES = frozenset(Mode)


# --- test components, registered straight into a registry ------------------------------------


class CsvParams(Params):
    path: str
    """Path of the CSV file with the bars."""
    symbols: list[str] = []
    """Symbols to load; empty means every symbol in the file."""


class FakeCsv(Component):
    """Bars from a CSV file (backtest only)."""

    Params = CsvParams
    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST}))


class FeedParams(Params):
    symbols: list[str]
    """Symbols to subscribe to."""


class FakeFeed(Component):
    """A live feed."""

    Params = FeedParams
    capabilities = Capabilities(modes=ALL_MODES)


class SmaParams(Params):
    fast: int = Field(default=10, gt=0)
    """Fast moving-average window, in bars."""
    slow: int = Field(default=50, gt=0)
    """Slow moving-average window, in bars."""


class FakeSma(Component):
    """Moving-average crossover."""

    Params = SmaParams
    capabilities = Capabilities(modes=ALL_MODES)


class FakeHold(Component):
    """Buy and hold."""

    Params = EmptyParams
    capabilities = Capabilities(modes=ALL_MODES)


class MaxPositionParams(Params):
    max_weight: float = Field(default=0.2, gt=0, le=1)
    """Largest position as a fraction of equity."""


class FakeMaxPosition(Component):
    """Caps position size."""

    Params = MaxPositionParams
    capabilities = Capabilities(modes=ALL_MODES)


class NotionalParams(Params):
    limit: Decimal = Decimal("50000")
    """Largest order notional."""
    fee: Decimal = Decimal("0.0005")
    """A rate."""
    exact: Decimal = Decimal("0.1000000000000000000001")
    """More digits than a float holds."""


class FakeNotional(Component):
    """Caps order notional (Decimal params)."""

    Params = NotionalParams
    capabilities = Capabilities(modes=ALL_MODES)


class NoFees(Params):
    model: Literal["none"] = "none"


class PercentFees(Params):
    model: Literal["percent"] = "percent"
    rate: float
    """Fee as a fraction of notional."""


class CostlyParams(Params):
    fees: Annotated[NoFees | PercentFees, Field(discriminator="model")] = NoFees()
    """The fee model."""
    lot: int | list[int] = 1
    """A lot size, or one per symbol."""


class FakeCostly(Component):
    """A broker with nested, union-typed params (to test error paths)."""

    Params = CostlyParams
    capabilities = Capabilities(modes=ALL_MODES)


class SimulatedParams(Params):
    slippage_bps: float = 0.0
    """Slippage in basis points."""


class FakeSimulated(Component):
    """Simulated broker."""

    Params = SimulatedParams
    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER}))


class VenueParams(Params):
    api_key: SecretStr
    """API key of the venue account."""
    account: str = "main"
    """Account name."""


class FakeVenue(Component):
    """A real venue."""

    Params = VenueParams
    capabilities = Capabilities(modes=frozenset({Mode.PAPER, Mode.LIVE}))


class VaultParams(Params):
    token: SecretStr = Field(min_length=20)
    """A long token."""


class FakeVault(Component):
    """A broker whose secret has a length rule (to test masking in error messages)."""

    Params = VaultParams
    capabilities = Capabilities(modes=ALL_MODES)


class FlatFeeParams(Params):
    amount: float = Field(default=1.0, ge=0)
    """Commission per fill."""


class FakeFlatFee(Component):
    """A flat commission per fill."""

    Params = FlatFeeParams
    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER}))


class ParticipationParams(Params):
    max_participation: float = Field(gt=0, le=1)
    """Largest fraction of a bar's volume filled."""


class FakeParticipation(Component):
    """Fills limited to a share of each bar's volume."""

    Params = ParticipationParams
    capabilities = Capabilities(modes=frozenset({Mode.BACKTEST, Mode.PAPER}))


COMPONENTS: list[tuple[Kind, str, type[Component]]] = [
    (Kind.DATA_SOURCE, "csv", FakeCsv),
    (Kind.DATA_SOURCE, "feed", FakeFeed),
    (Kind.STRATEGY, "sma", FakeSma),
    (Kind.STRATEGY, "hold", FakeHold),
    (Kind.RISK_RULE, "max-position", FakeMaxPosition),
    (Kind.RISK_RULE, "notional", FakeNotional),
    (Kind.BROKER, "simulated", FakeSimulated),
    (Kind.BROKER, "venue", FakeVenue),
    (Kind.BROKER, "costly", FakeCostly),
    (Kind.BROKER, "vault", FakeVault),
    (Kind.COST_MODEL, "flat-fee", FakeFlatFee),
    (Kind.FILL_MODEL, "volume-participation", FakeParticipation),
]


def make_host() -> PluginHost:
    host = PluginHost(builtins=False, entry_points=[], env={})
    for kind, name, cls in COMPONENTS:
        doc = (cls.__doc__ or "").strip()
        spec = ComponentSpec(kind, name, cls, "tradeloom-test", "1.0", "tradeloom-test:t", doc)
        host.registry.add(spec)
    return host


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return make_host()


VALID = """
[data]
type = "csv"
params = { path = "prices.csv" }

[strategy]
type = "sma"
"""


def write(tmp_path: Path, text: str, name: str = "deploy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- composition -----------------------------------------------------------------------------


def test_extends_chain_is_recursive_and_relative_to_each_file(host: PluginHost) -> None:
    resolved = load_deployment([CONFIGS / "nested" / "leaf.toml"], host=host)

    (strategy,) = resolved.strategies
    assert strategy.params == SmaParams(fast=5, slow=50)  # fast from child, slow from base
    assert resolved.run.initial_cash == 75_000.0  # child overrides base
    assert resolved.run.currency == "EUR"  # base, untouched
    assert resolved.run.benchmark == "SPY"  # leaf
    assert resolved.data.params == CsvParams(path="data/prices.csv", symbols=["IBM"])
    assert [Path(s).name for s in resolved.sources] == ["base.toml", "child.toml", "leaf.toml"]


def test_load_raw_removes_extends_and_keeps_plain_values() -> None:
    raw = load_raw([CONFIGS / "child.toml"])
    assert "extends" not in raw
    assert raw["strategy"] == {"type": "sma", "params": {"fast": 5, "slow": 50}}
    assert raw["run"]["start"] == date(2020, 1, 1)


def test_later_file_overrides_earlier_and_tables_merge() -> None:
    raw = load_raw([CONFIGS / "base.toml", CONFIGS / "child.toml"])
    assert raw["strategy"]["params"] == {"fast": 5, "slow": 50}
    assert raw["run"]["initial_cash"] == 75000
    assert raw["run"]["currency"] == "EUR"


def test_arrays_are_replaced_not_merged() -> None:
    raw = load_raw([CONFIGS / "base.toml", CONFIGS / "no_risk.toml"])
    assert raw["risk"] == []
    raw = load_raw([CONFIGS / "nested" / "leaf.toml"])
    assert raw["data"]["params"]["symbols"] == ["IBM"]


def test_strategies_replaces_strategy_and_vice_versa(host: PluginHost) -> None:
    raw = load_raw([CONFIGS / "base.toml", CONFIGS / "two_strategies.toml"])
    assert "strategy" not in raw
    resolved = resolve(raw, host)
    assert [(s.id, s.type) for s in resolved.strategies] == [("fast-sma", "sma"), ("hold", "hold")]

    raw = load_raw(
        [CONFIGS / "base.toml", CONFIGS / "two_strategies.toml", CONFIGS / "one_strategy.toml"]
    )
    assert "strategies" not in raw
    # A different `type` replaces the whole component: sma's params do not leak into hold.
    assert raw["strategy"] == {"type": "hold"}
    assert [s.type for s in resolve(raw, host).strategies] == ["hold"]


def test_component_with_a_new_type_replaces_the_earlier_one() -> None:
    raw = load_raw([CONFIGS / "base.toml", CONFIGS / "one_strategy.toml"])
    assert raw["strategy"] == {"type": "hold"}


def test_diamond_extends_is_not_a_cycle(tmp_path: Path) -> None:
    write(tmp_path, 'mode = "backtest"\n[run]\ncurrency = "EUR"\n', "root.toml")
    write(tmp_path, 'extends = ["root.toml"]\n[run]\ninitial_cash = 1\n', "left.toml")
    write(tmp_path, 'extends = ["root.toml"]\n[run]\nbenchmark = "SPY"\n', "right.toml")
    top = write(tmp_path, 'extends = ["left.toml", "right.toml"]\n', "top.toml")
    assert load_raw([top])["run"] == {"currency": "EUR", "initial_cash": 1, "benchmark": "SPY"}


def test_a_single_path_string_is_one_file() -> None:
    assert load_raw(str(CONFIGS / "base.toml"))["mode"] == "backtest"


# --- --set overrides -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "path", "expected"),
    [
        ("strategy.params.fast=20", ("strategy", "params", "fast"), 20),
        ("risk[0].params.max_weight=0.25", ("risk", 0, "params", "max_weight"), 0.25),
        ('data.params.path="other.csv"', ("data", "params", "path"), "other.csv"),
        ("data.params.path=data/other.csv", ("data", "params", "path"), "data/other.csv"),
        ("run.benchmark=SPY", ("run", "benchmark"), "SPY"),
        ('data.params.symbols=["A", "B"]', ("data", "params", "symbols"), ["A", "B"]),
        ("data.params.symbols[1]=XOM", ("data", "params", "symbols", 1), "XOM"),
        ("run.start=2020-06-01", ("run", "start"), date(2020, 6, 1)),
        ("broker.params.flag=true", ("broker", "params", "flag"), True),
        ("broker.params.empty=", ("broker", "params", "empty"), ""),
        ("run.initial_cash = 1e5", ("run", "initial_cash"), 100000.0),
    ],
)
def test_set_parses_toml_values_with_string_fallback(
    override: str, path: tuple[Any, ...], expected: Any
) -> None:
    raw = load_raw([CONFIGS / "base.toml"], [override])
    node: Any = raw
    for part in path:
        node = node[part]
    assert node == expected
    assert type(node) is type(expected)


def test_set_indexes_into_strategies(host: PluginHost) -> None:
    resolved = load_deployment(
        [CONFIGS / "base.toml", CONFIGS / "two_strategies.toml"],
        ["strategies[0].params.fast=7", "strategies[1].id=buy-hold"],
        host=host,
    )
    assert resolved.strategies[0].params.fast == 7
    assert resolved.strategies[1].id == "buy-hold"


def test_set_is_applied_after_every_file_and_in_order() -> None:
    raw = load_raw(
        [CONFIGS / "base.toml", CONFIGS / "child.toml"],
        ["strategy.params.fast=1", "strategy.params.fast=2"],
    )
    assert raw["strategy"]["params"]["fast"] == 2


def test_overrides_may_be_a_mapping_of_python_values() -> None:
    raw = load_raw([CONFIGS / "base.toml"], {"strategy.params.fast": 3, "run.benchmark": "QQQ"})
    assert raw["strategy"]["params"]["fast"] == 3
    assert raw["run"]["benchmark"] == "QQQ"


# --- ${env:...} interpolation ----------------------------------------------------------------


def test_env_interpolation_whole_value_inside_string_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID
        + """
[run]
benchmark = "${env:BENCH}"
currency = "${env:CCY:-USD}"

[broker]
type = "simulated"
params = { note = "key=${env:BENCH}/${env:EMPTY:-fallback}/$${env:LITERAL}", n = ["${env:BENCH}"] }
""",
    )
    raw = load_raw([path], env={"BENCH": "SPY", "EMPTY": ""})
    assert raw["run"]["benchmark"] == "SPY"
    assert raw["run"]["currency"] == "USD"
    assert raw["broker"]["params"]["note"] == "key=SPY/fallback/${env:LITERAL}"
    assert raw["broker"]["params"]["n"] == ["SPY"]


def test_env_values_are_validated_like_any_other(host: PluginHost, tmp_path: Path) -> None:
    path = write(tmp_path, VALID + '[run]\ninitial_cash = "${env:CASH}"\n')
    resolved = load_deployment([path], host=host, env={"CASH": "2500.5"})
    assert resolved.run.initial_cash == 2500.5


def test_missing_env_var_names_the_path_the_variable_and_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        load_raw([CONFIGS / "live_venue.toml"], env={})
    message = str(info.value)
    assert "broker.params.api_key" in message
    assert "TL_TEST_VENUE_KEY" in message
    assert "export TL_TEST_VENUE_KEY" in message
    assert "live_venue.toml" in message
    assert info.value.exit_code == 2


# --- secrets ---------------------------------------------------------------------------------


@pytest.fixture()
def live(host: PluginHost) -> ResolvedDeployment:
    return load_deployment(
        [CONFIGS / "live_venue.toml"], host=host, env={"TL_TEST_VENUE_KEY": CANARY}
    )


def test_secret_is_validated_and_reachable(live: ResolvedDeployment) -> None:
    params = live.broker.params
    assert isinstance(params, VenueParams)
    assert params.api_key.get_secret_value() == CANARY
    assert params.account == "main"  # ${env:TL_TEST_ACCOUNT:-main}
    assert live.broker.build().params.api_key.get_secret_value() == CANARY


def test_secret_never_appears_in_any_rendering(live: ResolvedDeployment) -> None:
    renderings = [
        live.to_toml(),
        json.dumps(live.to_dict()),
        repr(live.to_dict()),
        repr(live),
        str(live),
        repr(live.config),
        live.config.model_dump_json(),
        json.dumps(json.loads(live.config.model_dump_json())),
        repr(live.broker),
        repr(live.broker.build()),
        live.config_hash(),
    ]
    for text in renderings:
        assert CANARY not in text
    assert live.to_dict()["broker"]["params"]["api_key"] == "**********"
    assert 'api_key = "**********"' in live.to_toml()


def test_secret_is_revealed_only_when_asked(live: ResolvedDeployment, host: PluginHost) -> None:
    unmasked = live.to_dict(mask_secrets=False)
    assert unmasked["broker"]["params"]["api_key"] == CANARY
    # The unmasked TOML loads back to the same deployment.
    again = resolve(tomllib.loads(live.to_toml(mask_secrets=False)), host)
    assert again.to_dict(mask_secrets=False) == unmasked


def test_secret_changes_do_not_change_the_config_hash(host: PluginHost) -> None:
    a = load_deployment([CONFIGS / "live_venue.toml"], host=host, env={"TL_TEST_VENUE_KEY": "a"})
    b = load_deployment([CONFIGS / "live_venue.toml"], host=host, env={"TL_TEST_VENUE_KEY": "b"})
    assert a.config_hash() == b.config_hash()


def test_secret_is_masked_in_validation_errors(host: PluginHost, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID.replace('"csv"', '"feed"').replace('path = "prices.csv"', 'symbols = ["X"]')
        + '[broker]\ntype = "vault"\nparams = { token = "${env:TOKEN}" }\n',
    )
    with pytest.raises(ConfigError) as info:
        load_deployment([path], host=host, env={"TOKEN": CANARY})
    message = str(info.value)
    assert message.startswith("broker.params.token: ")
    assert "at least 20" in message
    assert CANARY not in message
    assert "**********" in message


def test_cli_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_cmd, "_make_host", make_host)
    monkeypatch.setenv("TL_TEST_VENUE_KEY", CANARY)
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(
            config_cmd.config_app, ["show", str(CONFIGS / "live_venue.toml"), *extra]
        )
        assert result.exit_code == 0, result.output
        assert CANARY not in result.output
        assert "**********" in result.output


# --- the resolved deployment -----------------------------------------------------------------


def test_resolved_deployment_shape(host: PluginHost) -> None:
    resolved = load_deployment([CONFIGS / "base.toml"], host=host)
    assert resolved.mode is Mode.BACKTEST
    assert resolved.data.path == "data"
    assert resolved.data.spec.name == "csv"
    assert [(s.path, s.id) for s in resolved.strategies] == [("strategy", "sma")]
    assert [r.path for r in resolved.risk] == ["risk[0]"]
    assert resolved.risk[0].params == MaxPositionParams(max_weight=0.5)
    # Default broker, its params filled with defaults.
    assert resolved.broker.spec.name == "simulated"
    assert resolved.broker.params == SimulatedParams()
    assert isinstance(resolved.broker.build(), FakeSimulated)
    assert isinstance(resolved.config, DeploymentConfig)
    assert isinstance(resolved.run, RunConfig)
    assert resolved.run.start == pd.Timestamp("2020-01-01", tz="UTC")
    assert resolved.run.end == pd.Timestamp("2021-12-31", tz="UTC")
    assert resolved.run.initial_cash == 50_000.0
    assert isinstance(resolved.run.initial_cash, float)


def test_datetimes_with_offsets_become_utc(host: PluginHost, tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID + '[run]\nstart = 2020-01-02T09:30:00-05:00\nend = "2020-03-01T12:00"\n'
    )
    run = load_deployment([path], host=host).run
    assert run.start == pd.Timestamp("2020-01-02T14:30:00", tz="UTC")
    assert run.end == pd.Timestamp("2020-03-01T12:00:00", tz="UTC")


def test_to_dict_is_canonical(host: PluginHost) -> None:
    resolved = load_deployment([CONFIGS / "base.toml"], host=host)
    assert resolved.to_dict() == {
        "mode": "backtest",
        "data": {
            "type": "csv",
            "params": {"path": "data/prices.csv", "symbols": ["AAPL", "MSFT"]},
        },
        "strategies": [{"id": "sma", "type": "sma", "params": {"fast": 10, "slow": 50}}],
        "risk": [{"type": "max-position", "params": {"max_weight": 0.5}}],
        "broker": {"type": "simulated", "params": {"slippage_bps": 0.0}},
        "costs": [],
        "fill_models": [],
        "run": {
            "start": "2020-01-01T00:00:00+00:00",
            "end": "2021-12-31T00:00:00+00:00",
            "initial_cash": 50000.0,
            "currency": "EUR",
            "stream": "auto",
            "chunk_rows": 65536,
            "history_bars": 10000,
            "dividends": "cash",
            "calendar": "utc-days",
            "currencies": {},
        },
    }
    # No FX source: the key is left out, like every absent value (TOML has no null).
    assert resolved.fx is None and resolved.config.fx is None


def test_costs_are_resolved_in_order_and_canonical(host: PluginHost, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID + '[[costs]]\ntype = "flat-fee"\n[[costs]]\ntype = "flat-fee"\n'
        "params = { amount = 2.5 }\n",
    )
    resolved = load_deployment([path], host=host)
    assert [c.path for c in resolved.costs] == ["costs[0]", "costs[1]"]
    assert [c.params for c in resolved.costs] == [FlatFeeParams(), FlatFeeParams(amount=2.5)]
    assert resolved.components()[-2:] == resolved.costs
    assert resolved.to_dict()["costs"] == [
        {"type": "flat-fee", "params": {"amount": 1.0}},
        {"type": "flat-fee", "params": {"amount": 2.5}},
    ]
    assert [c.params for c in resolved.config.costs] == [{"amount": 1.0}, {"amount": 2.5}]
    again = resolve(tomllib.loads(resolved.to_toml()), host)
    assert again.to_dict() == resolved.to_dict()
    assert again.config_hash() == resolved.config_hash()
    without = load_deployment([path], ["costs=[]"], host=host)
    assert without.costs == [] and without.to_dict()["costs"] == []
    assert without.config_hash() != resolved.config_hash()
    assert (
        without.config_hash()
        == load_deployment([write(tmp_path, VALID, "v.toml")], host=host).config_hash()
    )


def test_fill_models_are_resolved_and_canonical(host: PluginHost, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID + '[[costs]]\ntype = "flat-fee"\n'
        '[[fill_models]]\ntype = "volume-participation"\nparams = { max_participation = 0.1 }\n',
    )
    resolved = load_deployment([path], host=host)
    assert [f.path for f in resolved.fill_models] == ["fill_models[0]"]
    assert [f.params for f in resolved.fill_models] == [ParticipationParams(max_participation=0.1)]
    assert resolved.components()[-2:] == [*resolved.costs, *resolved.fill_models]
    assert resolved.to_dict()["fill_models"] == [
        {"type": "volume-participation", "params": {"max_participation": 0.1}}
    ]
    assert [f.params for f in resolved.config.fill_models] == [{"max_participation": 0.1}]
    assert isinstance(resolved.fill_models[0].build(), FakeParticipation)
    again = resolve(tomllib.loads(resolved.to_toml()), host)
    assert again.to_dict() == resolved.to_dict()
    assert again.config_hash() == resolved.config_hash()
    without = load_deployment([path], ["fill_models=[]"], host=host)
    assert without.fill_models == [] and without.to_dict()["fill_models"] == []
    assert without.config_hash() != resolved.config_hash()
    assert load_deployment([write(tmp_path, VALID, "v.toml")], host=host).fill_models == []


FX = '[fx]\ntype = "csv"\nparams = { path = "fx.csv" }\n'


def test_fx_source_and_currencies_are_resolved_and_canonical(
    host: PluginHost, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        VALID
        + FX
        + '[run]\ncurrency = "EUR"\n'
        + '[run.currencies]\nAAPL = "USD"\nSAP = "EUR"\n"BRK.B" = "USD"\n',
    )
    resolved = load_deployment([path], host=host)
    assert resolved.fx is not None
    assert (resolved.fx.path, resolved.fx.type) == ("fx", "csv")
    assert resolved.fx.params == CsvParams(path="fx.csv")
    assert isinstance(resolved.fx.build(), FakeCsv)
    assert resolved.components()[:2] == [resolved.data, resolved.fx]
    assert resolved.run.currencies == {"AAPL": "USD", "SAP": "EUR", "BRK.B": "USD"}
    canonical = resolved.to_dict()
    assert canonical["fx"] == {"type": "csv", "params": {"path": "fx.csv", "symbols": []}}
    assert canonical["run"]["currencies"] == {"AAPL": "USD", "SAP": "EUR", "BRK.B": "USD"}
    assert resolved.config.fx is not None
    assert resolved.config.fx.params == {"path": "fx.csv", "symbols": []}
    again = resolve(tomllib.loads(resolved.to_toml()), host)
    assert again.to_dict() == canonical
    assert again.config_hash() == resolved.config_hash()
    other = load_deployment([path], ["fx.params.path=other.csv"], host=host)
    assert other.config_hash() != resolved.config_hash()
    # Symbols in the account currency need no FX source.
    without = load_deployment(
        [write(tmp_path, VALID + '[run]\ncurrencies = { SAP = "USD" }\n', "v.toml")], host=host
    )
    assert without.fx is None and "fx" not in without.to_dict()
    assert without.run.currencies == {"SAP": "USD"}
    assert without.config_hash() != resolved.config_hash()


def test_a_later_fx_source_of_another_type_replaces_the_earlier_one(
    host: PluginHost, tmp_path: Path
) -> None:
    write(tmp_path, VALID + FX, "base.toml")
    top = write(
        tmp_path,
        'extends = ["base.toml"]\n[fx]\ntype = "feed"\nparams = { symbols = ["EURUSD"] }\n',
        "top.toml",
    )
    resolved = load_deployment([top], host=host)
    assert resolved.fx is not None and resolved.fx.params == FeedParams(symbols=["EURUSD"])
    again = load_deployment([top], ["fx.params.symbols=['USDJPY']"], host=host)
    assert again.fx is not None and again.fx.params == FeedParams(symbols=["USDJPY"])


def test_decimals_render_as_numbers_when_exact(host: PluginHost) -> None:
    resolved = load_deployment([CONFIGS / "base.toml"], ["risk=[{type = 'notional'}]"], host=host)
    assert resolved.to_dict()["risk"] == [
        {
            "type": "notional",
            "params": {"limit": 50000, "fee": 0.0005, "exact": "0.1000000000000000000001"},
        }
    ]
    again = resolve(tomllib.loads(resolved.to_toml()), host)
    assert again.risk[0].params == NotionalParams()


def test_to_toml_is_deterministic_and_loads_back(host: PluginHost) -> None:
    a = load_deployment([CONFIGS / "base.toml"], host=host)
    b = load_deployment([CONFIGS / "base.toml"], host=host)
    assert a.to_toml() == b.to_toml()
    again = resolve(tomllib.loads(a.to_toml()), host)
    assert again.to_dict() == a.to_dict()
    assert again.config_hash() == a.config_hash()


def test_config_hash_is_stable_and_tracks_params(host: PluginHost, tmp_path: Path) -> None:
    base = load_deployment([CONFIGS / "base.toml"], host=host)
    digest = base.config_hash()
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert load_deployment([CONFIGS / "base.toml"], host=host).config_hash() == digest
    # Writing the defaults out, or `strategies = [one]` instead of `strategy`, is the same config.
    same = write(
        tmp_path,
        (CONFIGS / "base.toml").read_text().replace("[strategy]", "[[strategies]]")
        + '[broker]\ntype = "simulated"\nparams = { slippage_bps = 0 }\n',
    )
    assert load_deployment([same], host=host).config_hash() == digest
    changed = load_deployment([CONFIGS / "base.toml"], ["strategy.params.fast=11"], host=host)
    assert changed.config_hash() != digest


def test_resolve_accepts_a_plain_dict(host: PluginHost) -> None:
    resolved = resolve(
        {"data": {"type": "feed", "params": {"symbols": ["X"]}}, "strategy": {"type": "hold"}},
        host,
    )
    assert resolved.sources == ["<config>"]
    assert resolved.strategies[0].id == "hold"


def test_source_names_the_origin_in_errors(host: PluginHost) -> None:
    with pytest.raises(ConfigError, match=r"run\.initial_cash: .*\(in notebook\)"):
        resolve(
            {
                "data": {"type": "csv", "params": {"path": "p"}},
                "strategy": {"type": "sma"},
                "run": {"initial_cash": -1},
            },
            host,
            source="notebook",
        )


def test_errors_name_the_file_that_set_the_value(host: PluginHost) -> None:
    with pytest.raises(ConfigError) as info:
        load_deployment([CONFIGS / "nested" / "leaf.toml"], ["strategy.params.slow=0"], host=host)
    assert str(info.value) == (
        "strategy.params.slow: Input should be greater than 0 (got 0) "
        "(in --set strategy.params.slow)"
    )


def test_error_attributes_values_to_the_base_file(host: PluginHost, tmp_path: Path) -> None:
    bad_base = write(tmp_path, VALID + "[run]\ninitial_cash = -5\n", "bad_base.toml")
    top = write(tmp_path, 'extends = ["bad_base.toml"]\nmode = "backtest"\n', "top.toml")
    with pytest.raises(ConfigError) as info:
        load_deployment([top], host=host)
    assert str(info.value).endswith(f"(in {bad_base})")
    assert info.value.path == "run.initial_cash"


def test_several_problems_are_counted_then_listed_one_per_line(
    host: PluginHost, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        VALID + '[run]\ninitial_cash = 0\ncurrency = "usd"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_deployment([path], host=host)
    lines = str(info.value).splitlines()
    assert lines[0] == "2 problems in the deployment config:"
    assert lines[1].strip().startswith("run.initial_cash: Input should be greater than 0")
    assert lines[2].strip().startswith("run.currency: expected a three-letter")
    assert "did you mean 'USD'" in lines[2]


def test_phase_two_reports_problems_of_every_component(host: PluginHost, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID.replace('type = "sma"', 'type = "sma"\nparams = { fast = "abc" }')
        + '[broker]\ntype = "nope"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_deployment([path], host=host)
    lines = str(info.value).splitlines()
    assert lines[0] == "2 problems in the deployment config:"
    assert lines[1].strip().startswith("strategy.params.fast: Input should be a valid integer")
    assert "(got 'abc')" in lines[1]
    assert lines[2].strip().startswith("broker.type: unknown broker type 'nope'")


# --- malformed configs: one ConfigError, one line, naming the path ---------------------------


@dataclass
class Bad:
    """A malformed deployment and what its error message must contain."""

    id: str
    toml: str | None = None
    files: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    expect: tuple[str, ...] = ()
    path: str | None = None


BAD = [
    Bad(
        "unknown-top-level-key",
        "colour = 1\n" + VALID,
        expect=("colour: unknown key; valid keys: mode, extends, data, strategy",),
        path="colour",
    ),
    Bad(
        "unknown-key-in-run",
        VALID + "[run]\nfoo = 1\n",
        expect=("run.foo: unknown key; valid keys: start, end, initial_cash, currency, benchmark",),
        path="run.foo",
    ),
    Bad(
        "wrong-param-type",
        VALID.replace('type = "sma"', 'type = "sma"\nparams = { fast = "abc" }'),
        expect=("strategy.params.fast: Input should be a valid integer", "(got 'abc')"),
        path="strategy.params.fast",
    ),
    Bad(
        "unknown-param-key",
        VALID.replace('type = "sma"', 'type = "sma"\nparams = { fsat = 3 }'),
        expect=("strategy.params.fsat: unknown key; valid keys: fast, slow",),
        path="strategy.params.fsat",
    ),
    Bad(
        "param-out-of-range-in-risk-chain",
        VALID + '[[risk]]\ntype = "max-position"\n[[risk]]\ntype = "max-position"\n'
        "params = { max_weight = 2 }\n",
        expect=("risk[1].params.max_weight: Input should be less than or equal to 1", "(got 2)"),
        path="risk[1].params.max_weight",
    ),
    Bad(
        "param-out-of-range-in-costs",
        VALID + '[[costs]]\ntype = "flat-fee"\n[[costs]]\ntype = "flat-fee"\n'
        "params = { amount = -1 }\n",
        expect=("costs[1].params.amount: Input should be greater than or equal to 0", "(got -1)"),
        path="costs[1].params.amount",
    ),
    Bad(
        "unknown-cost-model-type",
        VALID + '[[costs]]\ntype = "flat-feee"\n',
        expect=("costs[0].type: unknown cost model type 'flat-feee'", "installed: flat-fee"),
        path="costs[0].type",
    ),
    Bad(
        "param-out-of-range-in-fill-models",
        VALID + '[[fill_models]]\ntype = "volume-participation"\n'
        "params = { max_participation = 2 }\n",
        expect=(
            "fill_models[0].params.max_participation: Input should be less than or equal to 1",
            "(got 2)",
        ),
        path="fill_models[0].params.max_participation",
    ),
    Bad(
        "unknown-fill-model-type",
        VALID + '[[fill_models]]\ntype = "same-closee"\n',
        expect=(
            "fill_models[0].type: unknown fill model type 'same-closee'",
            "installed: volume-participation",
        ),
        path="fill_models[0].type",
    ),
    Bad(
        "unknown-strategy-type",
        VALID.replace('type = "sma"', 'type = "smaa"'),
        expect=(
            "strategy.type: unknown strategy type 'smaa'",
            "installed: hold, sma",
            "uv pip install tradeloom-smaa",
            "tradeloom plugins list",
        ),
        path="strategy.type",
    ),
    Bad(
        "unknown-strategy-type-in-list",
        VALID.replace("[strategy]", "[[strategies]]") + '[[strategies]]\nid = "b"\ntype = "rsi"\n',
        expect=("strategies[1].type: unknown strategy type 'rsi'", "installed: hold, sma"),
        path="strategies[1].type",
    ),
    Bad(
        "unknown-data-type",
        VALID.replace('type = "csv"', 'type = "excel"'),
        expect=("data.type: unknown data source type 'excel'", "installed: csv, feed"),
        path="data.type",
    ),
    Bad(
        "missing-data",
        '[strategy]\ntype = "sma"\n',
        expect=("data: missing; every deployment needs a data source",),
        path="data",
    ),
    Bad(
        "negative-initial-cash",
        VALID + "[run]\ninitial_cash = -100\n",
        expect=("run.initial_cash: Input should be greater than 0 (got -100)",),
        path="run.initial_cash",
    ),
    Bad(
        "zero-initial-cash",
        VALID + "[run]\ninitial_cash = 0\n",
        expect=("run.initial_cash: Input should be greater than 0 (got 0)",),
        path="run.initial_cash",
    ),
    Bad(
        "boolean-initial-cash",
        VALID + "[run]\ninitial_cash = true\n",
        expect=("run.initial_cash: expected a number (got true)",),
        path="run.initial_cash",
    ),
    Bad(
        "end-before-start",
        VALID + "[run]\nstart = 2021-01-01\nend = 2020-12-31\n",
        expect=("run.end: end (2020-12-31T00:00:00+00:00) is before start",),
        path="run.end",
    ),
    Bad(
        "bad-date-string",
        VALID + '[run]\nstart = "2020-13-45"\n',
        expect=("run.start: not a valid date or datetime", "(got '2020-13-45')"),
        path="run.start",
    ),
    Bad(
        "bad-currency",
        VALID + '[run]\ncurrency = "DOLLARS"\n',
        expect=("run.currency: expected a three-letter upper-case currency code", "'DOLLARS'"),
        path="run.currency",
    ),
    Bad(
        "bad-currency-in-currencies",
        VALID + FX + '[run]\ncurrencies = { SAP = "eur" }\n',
        expect=(
            "run.currencies.SAP: expected a three-letter upper-case currency code like USD",
            "did you mean 'EUR'?",
            "(got 'eur')",
        ),
        path="run.currencies.SAP",
    ),
    Bad(
        "quoted-symbol-with-bad-currency",
        VALID + FX + '[run.currencies]\n"BRK.B" = "DOLLARS"\n',
        expect=('run.currencies."BRK.B": expected a three-letter upper-case currency code',),
        path='run.currencies."BRK.B"',
    ),
    Bad(
        "currencies-not-a-table",
        VALID + FX + '[run]\ncurrencies = "EUR"\n',
        expect=("run.currencies: expected a table (got 'EUR')",),
        path="run.currencies",
    ),
    Bad(
        "foreign-currency-without-fx",
        VALID + '[run]\ncurrency = "EUR"\ncurrencies = { AAPL = "USD", SAP = "EUR" }\n',
        expect=(
            "run.currencies: symbols quoted in another currency than the account's (EUR) need "
            "FX rates, but no FX source is configured (AAPL in USD)",
            "add an [fx] data source whose symbols are the pairs USDEUR (or their inverses)",
        ),
        path="run.currencies",
    ),
    Bad(
        "foreign-currency-without-fx-set-on-the-command-line",
        VALID,
        overrides=["run.currencies.SAP=EUR"],
        expect=("run.currencies: symbols quoted in another currency", "add an [fx] data source"),
        path="run.currencies",
    ),
    Bad(
        "unknown-fx-type",
        VALID + '[fx]\ntype = "excel"\n',
        expect=("fx.type: unknown data source type 'excel'", "installed: csv, feed"),
        path="fx.type",
    ),
    Bad(
        "wrong-fx-param-type",
        VALID + '[fx]\ntype = "csv"\nparams = { path = 1 }\n',
        expect=("fx.params.path: Input should be a valid string", "(got 1)"),
        path="fx.params.path",
    ),
    Bad(
        "unknown-fx-param",
        VALID + '[fx]\ntype = "feed"\nparams = { symbols = [], pairs = 1 }\n',
        expect=("fx.params.pairs: unknown key; valid keys: symbols",),
        path="fx.params.pairs",
    ),
    Bad(
        "live-mode-with-backtest-only-fx",
        'mode = "live"\n'
        + VALID.replace(
            'type = "csv"\nparams = { path = "prices.csv" }',
            'type = "feed"\nparams = { symbols = ["SAP"] }',
        )
        + FX
        + '[broker]\ntype = "venue"\nparams = { api_key = "k" }\n',
        expect=("fx.type: data source 'csv' (tradeloom-test 1.0) does not support mode 'live'",),
        path="fx.type",
    ),
    Bad(
        "bad-mode",
        'mode = "production"\n' + VALID,
        expect=("mode: Input should be 'backtest', 'paper' or 'live' (got 'production')",),
        path="mode",
    ),
    Bad(
        "set-index-on-a-missing-array",
        VALID,
        overrides=["strategies[0].params.fast=1"],
        expect=(
            "--set strategies[0].params.fast=1: strategies is not set",
            "single `strategy`",
            "expected --set PATH=VALUE",
        ),
    ),
    Bad(
        "set-index-past-end",
        VALID.replace("[strategy]", "[[strategies]]"),
        overrides=["strategies[1].params.fast=1"],
        expect=(
            "--set strategies[1].params.fast=1: index 1 is out of range (strategies has 1 entry)",
            "expected --set PATH=VALUE",
        ),
    ),
    Bad(
        "set-through-a-non-table",
        VALID,
        overrides=["data.type.name=x"],
        expect=("--set data.type.name=x: data.type is a string, not a table", "PATH=VALUE"),
    ),
    Bad(
        "set-malformed-path",
        VALID,
        overrides=["strategy..fast=1"],
        expect=("--set strategy..fast=1: invalid path 'strategy..fast'", "PATH=VALUE"),
    ),
    Bad(
        "set-empty-path",
        VALID,
        overrides=["=1"],
        expect=("--set =1: empty path", "expected --set PATH=VALUE"),
    ),
    Bad(
        "set-without-equals",
        VALID,
        overrides=["strategy.params.fast"],
        expect=("--set strategy.params.fast: missing '='", "expected --set PATH=VALUE"),
    ),
    Bad(
        "missing-env-var",
        VALID + '[run]\nbenchmark = "${env:TL_TEST_NOT_SET}"\n',
        expect=("run.benchmark: environment variable TL_TEST_NOT_SET is not set", "export"),
        path="run.benchmark",
    ),
    Bad(
        "malformed-env-reference",
        VALID + '[run]\nbenchmark = "${env:1BAD}"\n',
        expect=("run.benchmark: malformed environment reference '${env:1BAD}'",),
        path="run.benchmark",
    ),
    Bad(
        "both-strategy-and-strategies",
        VALID + '[[strategies]]\ntype = "hold"\n',
        expect=("strategy: both `strategy` and `strategies` are set",),
        path="strategy",
    ),
    Bad(
        "neither-strategy-nor-strategies",
        '[data]\ntype = "csv"\nparams = { path = "p.csv" }\n',
        expect=("strategy: no strategy configured",),
        path="strategy",
    ),
    Bad(
        "empty-strategies",
        'strategies = []\n[data]\ntype = "csv"\nparams = { path = "p.csv" }\n',
        expect=("strategies: the list is empty",),
        path="strategies",
    ),
    Bad(
        "duplicate-strategy-ids",
        VALID.replace("[strategy]", "[[strategies]]")
        + '[[strategies]]\ntype = "sma"\nparams = { fast = 3 }\n',
        expect=("strategies[1].id: duplicate strategy id 'sma'",),
        path="strategies[1].id",
    ),
    Bad(
        "invalid-strategy-id",
        VALID.replace('type = "sma"', 'type = "sma"\nid = "has space"'),
        expect=("strategy.id: ids start with a letter or digit",),
        path="strategy.id",
    ),
    Bad(
        "strategy-not-a-table",
        'strategy = "sma"\n[data]\ntype = "csv"\nparams = { path = "p.csv" }\n',
        expect=("strategy: expected a table (got 'sma')",),
        path="strategy",
    ),
    Bad(
        "toml-syntax-error",
        files=["syntax_error.toml"],
        expect=("syntax_error.toml:5:27: invalid TOML: ", "(line 5, column 27)"),
    ),
    Bad(
        "missing-config-file",
        files=["no-such-deployment.toml"],
        expect=("config file not found:", "no-such-deployment.toml"),
    ),
    Bad(
        "missing-extends-file",
        files=["missing_base.toml"],
        expect=("extends: file 'does-not-exist.toml' not found", "missing_base.toml"),
        path="extends",
    ),
    Bad(
        "extends-cycle",
        files=["cycle_a.toml"],
        expect=("extends cycle: ", "cycle_a.toml -> ", "cycle_b.toml -> ", "cycle_a.toml;"),
    ),
    Bad(
        "live-mode-with-backtest-only-component",
        'mode = "live"\n' + VALID + '[broker]\ntype = "venue"\nparams = { api_key = "k" }\n',
        expect=(
            "data.type: data source 'csv' (tradeloom-test 1.0) does not support mode 'live'",
            "it supports: backtest",
        ),
        path="data.type",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_malformed_config_gives_one_line_naming_the_path(
    case: Bad, host: PluginHost, tmp_path: Path
) -> None:
    paths: list[Path] = [CONFIGS / f for f in case.files]
    if case.toml is not None:
        paths.insert(0, write(tmp_path, case.toml))
    with pytest.raises(ConfigError) as info:
        load_deployment(paths, case.overrides, host=host, env=case.env)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if case.path is not None:
        assert info.value.path == case.path
        assert message.startswith(f"{case.path}: ")
    if case.toml is not None and not case.overrides:
        assert message.endswith("(in " + str(paths[0]) + ")")
    assert info.value.exit_code == 2


def test_there_are_enough_malformed_cases() -> None:
    assert len(BAD) >= 14


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            '{ fees = { model = "percent", rate = "x" } }',
            "broker.params.fees.rate: Input should be a valid number, unable to parse string as "
            "a number (got 'x')",
        ),
        (
            '{ fees = { model = "percent", rate = 0.1, extra = 1 } }',
            "broker.params.fees.extra: unknown key; valid keys: model, rate",
        ),
        (
            '{ fees = { model = "flat" } }',
            "broker.params.fees: Input tag 'flat' found using 'model' does not match any of the "
            "expected tags: 'none', 'percent' (got {'model': 'flat'})",
        ),
        (
            '{ lot = "abc" }',
            "broker.params.lot: Input should be a valid integer, unable to parse string as an "
            "integer or expected an array (got 'abc')",
        ),
        ('{ lot = [1, "x"] }', "broker.params.lot[1]: Input should be a valid integer"),
    ],
)
def test_nested_and_union_params_get_one_precise_line(
    params: str, message: str, host: PluginHost, tmp_path: Path
) -> None:
    path = write(tmp_path, VALID + f'[broker]\ntype = "costly"\nparams = {params}\n')
    with pytest.raises(ConfigError) as info:
        load_deployment([path], host=host)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(message)


def test_live_mode_rejects_the_default_simulated_broker(host: PluginHost) -> None:
    raw = {"mode": "live", "data": {"type": "feed", "params": {"symbols": ["X"]}}}
    with pytest.raises(ConfigError) as info:
        resolve({**raw, "strategy": {"type": "hold"}}, host)
    assert str(info.value).startswith(
        "broker.type: broker 'simulated' (tradeloom-test 1.0) does not support mode 'live' "
        "(it supports: backtest, paper)"
    )


def test_resolve_rejects_a_dict_that_still_extends(host: PluginHost) -> None:
    with pytest.raises(ConfigError, match=r"^extends: files are composed when they are loaded"):
        resolve(
            {"extends": ["base.toml"], "data": {"type": "csv"}, "strategy": {"type": "sma"}}, host
        )


def test_no_files_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no config file given"):
        load_raw([])


# --- JSON Schema -----------------------------------------------------------------------------


def test_json_schema_lists_every_component_with_param_descriptions(host: PluginHost) -> None:
    schema = json_schema(host)
    text = json.dumps(schema)
    for _, name, _ in COMPONENTS:
        assert json.dumps(name) in text
    assert "Fast moving-average window, in bars." in text
    assert "Starting cash of the account" in text  # RunConfig attribute docstring

    def consts(slot: dict[str, Any]) -> list[str]:
        names = []
        for option in slot["oneOf"]:
            member = schema["$defs"][option["$ref"].split("/")[-1]]
            names.append(member["properties"]["type"]["const"])
        return names

    props = schema["properties"]
    assert consts(props["data"]) == ["csv", "feed"]
    assert consts(props["strategy"]) == ["hold", "sma"]
    assert consts(props["strategies"]["items"]) == ["hold", "sma"]
    assert consts(props["risk"]["items"]) == ["max-position", "notional"]
    assert consts(props["broker"]) == ["costly", "simulated", "vault", "venue"]
    assert consts(props["costs"]["items"]) == ["flat-fee"]
    assert props["costs"]["default"] == []
    assert consts(props["fill_models"]["items"]) == ["volume-participation"]
    assert props["fill_models"]["default"] == []
    assert consts(props["fx"]) == ["csv", "feed"]
    currencies = schema["$defs"]["RunConfig"]["properties"]["currencies"]
    assert currencies["type"] == "object"
    assert currencies["additionalProperties"] == {"type": "string", "pattern": "^[A-Z]{3}$"}
    sma = schema["$defs"][props["strategy"]["oneOf"][1]["$ref"].split("/")[-1]]
    assert set(sma["properties"]) == {"type", "id", "params"}
    assert sma["additionalProperties"] is False
    csv = schema["$defs"][props["data"]["oneOf"][0]["$ref"].split("/")[-1]]
    assert csv["required"] == ["type", "params"]  # `path` has no default
    assert schema["additionalProperties"] is False


def test_json_schema_validates_the_canonical_config(host: PluginHost) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema(host)
    resolved = load_deployment([CONFIGS / "base.toml"], host=host)
    jsonschema.validate(resolved.to_dict(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**resolved.to_dict(), "colour": 1}, schema)
    with_fx = load_deployment(
        [CONFIGS / "base.toml"],
        {"fx": {"type": "csv", "params": {"path": "fx.csv"}}, "run.currencies": {"X": "USD"}},
        host=host,
    ).to_dict()
    jsonschema.validate(with_fx, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**with_fx, "run": {**with_fx["run"], "currencies": {"X": "usd"}}}, schema
        )


def test_json_schema_with_no_components_installed() -> None:
    schema = json_schema(PluginHost(builtins=False, entry_points=[], env={}))
    assert schema["properties"]["data"]["$ref"] == "#/$defs/ComponentConfig"
    assert "no data source is installed" in schema["properties"]["data"]["description"]


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(config_cmd, "_make_host", make_host)
    return CliRunner()


def test_cli_validate(cli: CliRunner) -> None:
    base, two = str(CONFIGS / "base.toml"), str(CONFIGS / "two_strategies.toml")
    result = cli.invoke(config_cmd.config_app, ["validate", base, "-c", two])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"OK: {base}, {two} — 2 strategies, data csv, broker simulated"
    result = cli.invoke(config_cmd.config_app, ["validate", base])
    assert result.output.strip().endswith("— 1 strategy, data csv, broker simulated")


def test_cli_errors_propagate_for_the_main_command(cli: CliRunner) -> None:
    result = cli.invoke(
        config_cmd.config_app,
        ["validate", str(CONFIGS / "base.toml"), "--set", "run.initial_cash=-1"],
    )
    assert isinstance(result.exception, ConfigError)
    assert result.exception.exit_code == 2
    result = cli.invoke(config_cmd.config_app, ["validate"])
    assert isinstance(result.exception, ConfigError)


def test_cli_show_toml_and_json(cli: CliRunner, host: PluginHost) -> None:
    base = str(CONFIGS / "base.toml")
    result = cli.invoke(config_cmd.config_app, ["show", base, "--set", "strategy.params.fast=12"])
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.output)
    assert shown["strategies"][0]["params"] == {"fast": 12, "slow": 50}
    assert "# config hash: " in result.output
    result = cli.invoke(config_cmd.config_app, ["show", base, "--json"])
    assert json.loads(result.output) == load_deployment([base], host=host).to_dict()


def test_cli_schema(cli: CliRunner) -> None:
    result = cli.invoke(config_cmd.config_app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["title"] == "tradeloom deployment"
    assert "sma" in result.output
