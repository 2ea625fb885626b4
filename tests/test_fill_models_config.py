"""Fill models in the deployment: ``[[fill_models]]`` resolved against the built-in models, built
by ``run_deployment`` and handed to the broker, and refused by the vector engine (parity)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import tradeloom.api
from tradeloom.cli.main import main
from tradeloom.config import load_deployment
from tradeloom.errors import ConfigError
from tradeloom.execution.fills import Latency, VolumeParticipation
from tradeloom.parity import run_parity
from tradeloom.plugins import PluginHost

from helpers import IBM_DEPLOYMENT

DEPLOY = IBM_DEPLOYMENT

FILLS = """
[[fill_models]]
type = "volume-participation"
params = { max_participation = 0.1 }

[[fill_models]]
type = "latency"
params = { bars = 1, ms = 250 }
"""


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


def write(tmp_path: Path, text: str, name: str = "deploy.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_builtin_fill_models_resolve_in_a_deployment(host: PluginHost, tmp_path: Path) -> None:
    resolved = load_deployment([write(tmp_path, DEPLOY + FILLS)], host=host)
    assert [(f.path, f.spec.name) for f in resolved.fill_models] == [
        ("fill_models[0]", "volume-participation"),
        ("fill_models[1]", "latency"),
    ]
    assert resolved.to_dict()["fill_models"] == [
        {"type": "volume-participation", "params": {"max_participation": 0.1}},
        {"type": "latency", "params": {"bars": 1, "ms": 250}},
    ]
    assert resolved.fill_models[1].build().delay() == (1, 250_000_000)
    plain = load_deployment([write(tmp_path, DEPLOY, "plain.toml")], host=host)
    assert plain.fill_models == [] and plain.to_dict()["fill_models"] == []


@pytest.mark.parametrize(
    ("fills", "path", "expect"),
    [
        (
            '[[fill_models]]\ntype = "volume-participation"\nparams = { max_participation = 0 }\n',
            "fill_models[0].params.max_participation",
            "fill_models[0].params.max_participation: Input should be greater than 0 (got 0)",
        ),
        (
            '[[fill_models]]\ntype = "same-close"\n'
            '[[fill_models]]\ntype = "latency"\nparams = { ms = -5 }\n',
            "fill_models[1].params.ms",
            "fill_models[1].params.ms: Input should be greater than or equal to 0 (got -5)",
        ),
        (
            '[[fill_models]]\ntype = "next-close"\n',
            "fill_models[0].type",
            "fill_models[0].type: unknown fill model type 'next-close'; installed: latency, "
            "next-open, same-close, volume-participation",
        ),
    ],
)
def test_fill_model_config_errors_name_the_path(
    host: PluginHost, tmp_path: Path, fills: str, path: str, expect: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_deployment([write(tmp_path, DEPLOY + fills)], host=host)
    assert info.value.path == path
    assert str(info.value).startswith(expect)


def test_run_deployment_hands_the_named_models_to_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the plumbing: the broker's ``use_fill_models`` is replaced by a recorder."""
    calls: list[list[object]] = []
    monkeypatch.setattr(
        tradeloom.api.SimulatedBroker,
        "use_fill_models",
        lambda self, models: calls.append(list(models)),
        raising=False,
    )
    tradeloom.api.backtest(write(tmp_path, DEPLOY + FILLS))
    ((participation, latency),) = calls
    assert isinstance(participation, VolumeParticipation)
    assert participation.params.max_participation == 0.1
    assert participation.name == "volume-participation"  # type: ignore[attr-defined]
    assert isinstance(latency, Latency) and latency.name == "latency"  # type: ignore[attr-defined]
    calls.clear()
    tradeloom.api.backtest(write(tmp_path, DEPLOY, "plain.toml"))
    assert calls == []  # no models configured: the broker is left alone


def test_same_close_fills_like_the_brokers_fill_at_close(tmp_path: Path) -> None:
    """Needs the simulated broker's ``use_fill_models``."""
    model = tradeloom.api.backtest(
        write(tmp_path, DEPLOY + '[[fill_models]]\ntype = "same-close"\n')
    )
    broker = tradeloom.api.backtest(
        write(tmp_path, DEPLOY + '[broker]\ntype = "simulated"\nparams = { fill_at = "close" }\n')
    )
    columns = ["symbol", "side", "quantity", "price"]
    assert len(model.fills) > 4
    assert model.fills[columns].to_dict("records") == broker.fills[columns].to_dict("records")


def test_parity_refuses_fill_models(host: PluginHost, tmp_path: Path) -> None:
    resolved = load_deployment([write(tmp_path, DEPLOY + FILLS)], host=host)
    with pytest.raises(ConfigError) as info:
        run_parity(resolved, host)
    assert info.value.path == "fill_models"
    message = str(info.value)
    assert "supports only the broker's `fill_at` (next_open / close), not fill models" in message
    assert "(volume-participation, latency)" in message
    assert "--set fill_models=[]" in message
    config = write(tmp_path, DEPLOY + FILLS, "cli.toml")
    assert main(["parity", str(config)]) == 2
    report = run_parity(load_deployment([config], ["fill_models=[]"], host=host), host)
    assert report.ok, report.summary()
