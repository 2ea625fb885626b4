"""The tradeloom pytest plugin: fixtures for plugin authors' tests.

Installed with the ``tradeloom`` distribution as the ``pytest11`` entry point ``tradeloom``, so
the fixtures are available in any test run of an environment where tradeloom is installed (no
``conftest.py`` needed); without it, import them explicitly
(``from tradeloom.testing.plugin import tradeloom_market``) or list the module in the
top-level ``conftest.py``'s ``pytest_plugins``.

Every fixture is lazy: this module imports only pytest, and a fixture imports the kernel when
a test first asks for it, so the plugin costs nothing in runs that do not use it.

* ``tradeloom_market``: a small :class:`~tradeloom.data.MarketData` (IBM, 2010, bundled).
* ``tradeloom_deployment``: the path of a tiny backtest deployment (``sma-crossover`` on IBM,
  2010) written in the test's ``tmp_path``.
* ``tradeloom_host``: a :class:`~tradeloom.plugins.PluginHost` of the installed plugins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tradeloom.data import MarketData
    from tradeloom.plugins import PluginHost

DEPLOYMENT = """\
# A tiny backtest: sma-crossover on IBM's 2010 daily bars (bundled data).
[data]
type = "dataset"
params = { name = "us-stocks-daily", symbols = ["IBM"] }

[strategy]
type = "sma-crossover"
params = { fast = 5, slow = 20, quantity = 10 }

[run]
start = "2010-01-01"
end = "2010-12-31"
"""
"""The deployment ``tradeloom_deployment`` writes."""


@pytest.fixture
def tradeloom_market() -> MarketData:
    """IBM's daily bars of 2010 from the bundled ``us-stocks-daily`` dataset (252 bars); a
    fresh copy per test, so a test may modify it."""
    import pandas as pd

    from tradeloom.data import DatasetSource

    source = DatasetSource(name="us-stocks-daily", symbols=["IBM"])
    return source.load(pd.Timestamp("2010-01-01", tz="UTC"), pd.Timestamp("2010-12-31", tz="UTC"))


@pytest.fixture
def tradeloom_deployment(tmp_path: Path) -> Path:
    """The path of ``deploy.toml`` in ``tmp_path``: a backtest of ``sma-crossover`` (fast 5,
    slow 20, 10 units) on IBM in 2010. Run it with ``tradeloom.backtest(path)`` or
    ``tradeloom backtest path``; extend it with overrides."""
    path = tmp_path / "deploy.toml"
    path.write_text(DEPLOYMENT, encoding="utf-8")
    return path


@pytest.fixture
def tradeloom_host() -> PluginHost:
    """A fresh :class:`~tradeloom.plugins.PluginHost`: the kernel's built-ins and every
    installed plugin, as ``tradeloom plugins list`` shows them."""
    from tradeloom.plugins import PluginHost

    return PluginHost()
