"""The deployment config: composition, interpolation, overrides and two-phase validation.

A deployment is described in TOML::

    mode = "backtest"                                  # backtest | paper | live
    extends = ["base.toml"]                            # optional, relative to this file

    [data]
    type = "csv"
    params = { path = "data/aapl.csv" }

    [[strategies]]                                     # or one [strategy] table
    type = "sma-crossover"
    params = { fast = 10, slow = 50 }

    [[risk]]
    type = "max-position"
    params = { max_weight = 0.2 }

    [broker]                                           # default: { type = "simulated" }
    type = "simulated"

    [[costs]]                                          # default: none
    type = "maker-taker"
    params = { maker_rate = -0.0002, taker_rate = 0.0007 }

    [[fill_models]]                                    # default: none (next bar's open)
    type = "volume-participation"
    params = { max_participation = 0.1 }

    [fx]                                               # default: none; FX pairs as BASEQUOTE
    type = "dataset"
    params = { name = "eurusd-1h" }

    [run]
    start = 2020-01-01
    end = 2023-12-31
    initial_cash = 100_000
    currencies = { SAP = "EUR" }                       # default: every symbol in `currency`

Loading goes in this order:

1. **Composition** (:func:`load_raw`): every file's ``extends`` list is loaded first
   (recursively, paths relative to the file that names them, cycles rejected), then the file
   itself on top; the files given by the caller are merged left to right. Tables merge key by
   key, arrays and scalars replace. Two special rules: a later ``strategy`` removes an earlier
   ``strategies`` (and the other way round), and a later component table whose ``type`` differs
   from the earlier one replaces it whole instead of merging ``params`` of two different
   components.
2. **Overrides**: ``--set PATH=VALUE`` arguments, applied last.
3. **Interpolation**: ``${env:NAME}`` and ``${env:NAME:-default}`` inside any string value.
4. **Phase 1** (:func:`resolve`): the outer shape, validated by :class:`DeploymentConfig` with
   component params kept as plain tables.
5. **Phase 2**: each component's ``type`` is looked up in the plugin registry, its params are
   validated by the component's own ``Params`` model, and its declared capabilities are checked
   against ``mode``.

Every problem becomes a :class:`~tradeloom.errors.ConfigError` whose message names the full
path (``strategies[0].params.fast``) and, when known, the file the value came from. Secrets are
``SecretStr`` fields in component params and are masked in every rendering.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

import pandas as pd
import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretBytes,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import models_json_schema

from tradeloom.components import Component, Kind, Mode, Params
from tradeloom.data.base import CHUNK_ROWS, HISTORY_BARS
from tradeloom.errors import ConfigError, PluginError, TradeloomError
from tradeloom.plugins import ComponentSpec, PluginHost, UnknownComponent

__all__ = [
    "ComponentConfig",
    "DeploymentConfig",
    "ResolvedComponent",
    "ResolvedDeployment",
    "RunConfig",
    "StrategyConfig",
    "json_schema",
    "load_deployment",
    "load_raw",
    "resolve",
]

MASK = "**********"
"""What a masked secret looks like in every rendering (the same string pydantic uses)."""

_UNKNOWN_SOURCE = "<config>"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")

# A path into the config tree: table keys and array indices, e.g. ("strategies", 0, "params").
Loc = tuple[str | int, ...]


# --- the outer shape (phase 1) ---------------------------------------------------------------


class _PathError(ValueError):
    """Raised inside model validators to report a problem at a path below the model."""

    def __init__(self, path: Loc, message: str, got: Any = None) -> None:
        super().__init__(message)
        self.path, self.message, self.got = path, message, got


def _to_utc_timestamp(value: Any) -> pd.Timestamp:
    """Accept a TOML date or datetime, or an ISO string; naive values are taken as UTC."""
    if isinstance(value, bool) or not isinstance(value, (str, date, datetime, pd.Timestamp)):
        raise ValueError("expected a date like 2020-01-01 or a datetime like 2020-01-01T09:30:00Z")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                "not a valid date or datetime; write it like 2020-01-01 or 2020-01-01T09:30:00Z"
            ) from None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


UtcTimestamp = Annotated[
    pd.Timestamp,
    PlainValidator(_to_utc_timestamp),
    PlainSerializer(lambda ts: ts.isoformat(), return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]
        }
    ),
]
"""A point in time, validated to a UTC :class:`pandas.Timestamp`."""


class _ConfigModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ComponentConfig(_ConfigModel):
    """A component slot: which registered component to use and its parameters."""

    type: str
    """Registered name of the component (`tradeloom plugins list` shows what is installed)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Parameters, validated by the component's own `Params` model."""


class StrategyConfig(ComponentConfig):
    """A strategy slot; `id` tells several strategies of one deployment apart."""

    id: str | None = None
    """Unique id of this strategy within the deployment; defaults to its `type`."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        if value is not None and not _ID_RE.match(value):
            raise ValueError(
                "ids start with a letter or digit and contain only letters, digits, '_', '-', '.'"
            )
        return value


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    return value


def _currency_code(value: str) -> str:
    if not _CURRENCY_RE.match(value):
        hint = f"; did you mean {value.upper()!r}?" if _CURRENCY_RE.match(value.upper()) else ""
        raise ValueError(f"expected a three-letter upper-case currency code like USD{hint}")
    return value


_CurrencyCode = Annotated[
    str,
    AfterValidator(_currency_code),
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$"}),
]
"""A three-letter upper-case ISO 4217 code such as ``"USD"``."""


class StoreConfig(_ConfigModel):
    """Where runs are journaled (see docs/store.md)."""

    url: str
    """Database URL: `sqlite:///path/tradeloom.db` (a file, created on first use) or
    `postgresql+psycopg://user:password@host:5432/db`. Take the password from the environment:
    `url = "postgresql+psycopg://trader:${env:PGPASSWORD}@db:5432/journal"`. Not part of the
    config hash: the same deployment journaled to two stores is the same deployment."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(
                "expected sqlite:///path/to/tradeloom.db or postgresql+psycopg://user@host/db"
            )
        return value


class RunConfig(_ConfigModel):
    """What to run: the time range, the starting account and the benchmark."""

    start: UtcTimestamp | None = None
    """First bar to use (inclusive): a date or a datetime; naive values are UTC. Default: all."""
    end: UtcTimestamp | None = None
    """Last bar to use (inclusive): a date or a datetime; naive values are UTC. Default: all."""
    initial_cash: Annotated[float, Field(gt=0, allow_inf_nan=False), BeforeValidator(_no_bool)] = (
        100_000.0
    )
    """Starting cash of the account, in `currency`; must be greater than 0."""
    currency: _CurrencyCode = "USD"
    """Account currency: a three-letter upper-case ISO 4217 code such as USD or EUR."""
    benchmark: str | None = Field(default=None, min_length=1)
    """Symbol of the benchmark series for alpha/beta in reports (optional)."""
    stream: Literal["auto", "always", "never"] = "auto"
    """Read the data in chunks while the event engine runs, for data larger than memory:
    ``"always"``, ``"never"`` (load it whole), or ``"auto"``: stream when loading it whole would
    take more than a quarter of the memory available. Needs a source that can stream (Parquet,
    rows in time order); the vector engine always loads the data whole."""
    chunk_rows: int = Field(default=CHUNK_ROWS, ge=1_000)
    """Rows read per chunk when streaming (whole Parquet row groups, so chunks can be larger)."""
    history_bars: int = Field(default=HISTORY_BARS, ge=1)
    """When streaming: how many past bars of each symbol ``ctx.history`` can still reach once
    earlier chunks are gone. Asking for more is an error naming this setting."""
    dividends: Literal["cash", "reinvest"] = "cash"
    """What a dividend from the data source's ``corporate_actions`` does on its ex-date:
    ``"cash"`` credits quantity × dividend (a short pays it); ``"reinvest"`` buys more units at
    the ex-date's close, as an adjusted close assumes."""
    calendar: str = "utc-days"
    """Trading sessions of the simulated broker: ``"utc-days"`` (default: UTC calendar days,
    every bar tradeable), ``"24/7"``, or an exchange from exchange-calendars such as ``"XNYS"``
    or ``"XLON"``: bars outside its sessions fill nothing, DAY orders expire at the session's
    close, market-on-open/close orders use its opens and closes (early closes included)."""
    currencies: dict[str, _CurrencyCode] = Field(default_factory=dict)
    """Quote currency of each symbol not priced in `currency`, e.g. ``{ SAP = "EUR" }``:
    its prices, fills and costs are in that currency and converted into `currency` with the
    rates of the `fx` data source. Symbols not listed are in `currency`. Default: none."""

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        from tradeloom.calendars import SessionCalendar

        if value in ("utc-days", "24/7"):
            return value
        try:
            return SessionCalendar.get(value).name
        except TradeloomError as exc:
            raise ValueError(str(exc).removeprefix("run.calendar: ")) from None

    @model_validator(mode="after")
    def _check_range(self) -> RunConfig:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise _PathError(
                ("end",),
                f"end ({self.end.isoformat()}) is before start ({self.start.isoformat()})",
            )
        return self


class DeploymentConfig(_ConfigModel):
    """A tradeloom deployment: data source, strategies, risk rules, broker, cost models, fill
    models, FX rates and run settings."""

    mode: Mode = Mode.BACKTEST
    """Run mode: backtest (simulated clock and broker), paper (real-time, simulated broker) or
    live (real-time, real broker)."""
    extends: list[str] = Field(default_factory=list)
    """Config files this one builds on, relative to this file; merged first, in order."""
    data: ComponentConfig
    """The data source."""
    strategy: StrategyConfig | None = None
    """The strategy, when there is exactly one (use either `strategy` or `strategies`)."""
    strategies: list[StrategyConfig] | None = None
    """Several strategies sharing the account (use either `strategy` or `strategies`)."""
    risk: list[ComponentConfig] = Field(default_factory=list)
    """Pre-trade risk rules, checked in order; any rejection wins."""
    broker: ComponentConfig = Field(default_factory=lambda: ComponentConfig(type="simulated"))
    """The broker orders are sent to."""
    costs: list[ComponentConfig] = Field(default_factory=list)
    """Cost models the simulated broker applies, in order: commissions, spread, daily financing
    (see docs/costs.md). Default: none (only the broker's own `fees` and `slippage_bps`)."""
    fill_models: list[ComponentConfig] = Field(default_factory=list)
    """Fill models the simulated broker combines: when an order can first trade and how much of
    it a bar can fill (see docs/fills.md). Default: none (the broker's own `fill_at`)."""
    fx: ComponentConfig | None = None
    """A data source of FX rates, needed when `run.currencies` quotes a symbol in another
    currency than `run.currency`: its symbols are pairs named BASEQUOTE (EURUSD = USD per 1
    EUR) and their closes are the rates. Default: none."""
    run: RunConfig = Field(default_factory=RunConfig)
    """Time range, starting cash, currency and benchmark."""
    store: StoreConfig | None = None
    """The journal database. Default: `TRADELOOM_STORE` from the environment, else
    `sqlite:///tradeloom.db` in the working directory (the command line's `--store` wins over
    both)."""

    @model_validator(mode="after")
    def _check_strategies(self) -> DeploymentConfig:
        if self.strategy is not None and self.strategies is not None:
            raise _PathError(
                ("strategy",),
                "both `strategy` and `strategies` are set; use `strategy` for one strategy or "
                "`[[strategies]]` tables for several, not both",
            )
        if self.strategy is None and self.strategies is None:
            raise _PathError(
                ("strategy",),
                "no strategy configured; add a `[strategy]` table with a `type` "
                "(or `[[strategies]]` tables for several)",
            )
        if self.strategies is not None and not self.strategies:
            raise _PathError(("strategies",), "the list is empty; configure at least one strategy")
        seen: dict[str, int] = {}
        for index, item in enumerate(self.strategies or []):
            sid = item.id or item.type
            if sid in seen:
                raise _PathError(
                    ("strategies", index, "id"),
                    f"duplicate strategy id {sid!r} (strategies[{seen[sid]}] uses it too; ids "
                    f"default to the type name): give each strategy a unique `id`",
                )
            seen[sid] = index
        return self

    @model_validator(mode="after")
    def _check_fx(self) -> DeploymentConfig:
        run = self.run
        foreign = {s: c for s, c in run.currencies.items() if c != run.currency}
        if foreign and self.fx is None:
            listed = ", ".join(f"{s} in {c}" for s, c in sorted(foreign.items()))
            pairs = ", ".join(sorted({f"{c}{run.currency}" for c in foreign.values()}))
            raise _PathError(
                ("run", "currencies"),
                f"symbols quoted in another currency than the account's ({run.currency}) need "
                f"FX rates, but no FX source is configured ({listed}): add an [fx] data source "
                f"whose symbols are the pairs {pairs} (or their inverses), e.g. "
                '[fx] type = "dataset", params = { name = "eurusd-1h" }',
            )
        return self

    def strategy_slots(self) -> list[tuple[Loc, StrategyConfig]]:
        """The strategies with their config paths, whichever form the config uses."""
        if self.strategy is not None:
            return [(("strategy",), self.strategy)]
        return [(("strategies", i), s) for i, s in enumerate(self.strategies or [])]


# --- resolved deployment (phase 2 result) ----------------------------------------------------


@dataclass(frozen=True)
class ResolvedComponent:
    """One component slot after phase 2: its registry entry and validated params."""

    path: str
    """Where it sits in the config, e.g. ``"strategies[0]"`` or ``"data"``."""
    spec: ComponentSpec
    params: Params
    """The validated ``Params`` instance (secrets are ``SecretStr``)."""
    id: str | None = None
    """Strategies only: the unique id (defaults to the type name)."""

    @property
    def type(self) -> str:
        """The registered name, as written in the config."""
        return self.spec.name

    def build(self) -> Component:
        """Instantiate the component with its validated params."""
        return self.spec.cls(self.params)

    def to_dict(self, mask_secrets: bool = True) -> dict[str, Any]:
        """``{"type", "params"}`` (and ``"id"`` for strategies), params with defaults filled."""
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["type"] = self.spec.name
        out["params"] = _dump_model(self.params, mask_secrets)
        return out


@dataclass(frozen=True)
class ResolvedDeployment:
    """A fully validated deployment, ready for a runner to build components from."""

    config: DeploymentConfig
    """The outer shape. Its component params are the validated values in JSON form with
    secrets masked; use the :class:`ResolvedComponent` objects for the real values."""
    data: ResolvedComponent
    strategies: list[ResolvedComponent]
    risk: list[ResolvedComponent]
    broker: ResolvedComponent
    run: RunConfig
    """Run settings; ``start`` / ``end`` are UTC :class:`pandas.Timestamp` or ``None``."""
    mode: Mode
    sources: list[str] = field(default_factory=list)
    """The files read, in merge order (bases before the files that extend them)."""
    costs: list[ResolvedComponent] = field(default_factory=list)
    """Cost models of the simulated broker, in the order they apply (default: none)."""
    fill_models: list[ResolvedComponent] = field(default_factory=list)
    """Fill models of the simulated broker, combined (default: none)."""
    fx: ResolvedComponent | None = None
    """The data source of FX rates (default: none)."""
    store_url: str | None = None
    """The journal database URL from ``[store]`` (``None``: the default). Not in
    :meth:`to_dict` nor the config hash."""

    def components(self) -> list[ResolvedComponent]:
        """Every component: data, FX data (if any), strategies, risk rules, broker, cost
        models, fill models."""
        return [
            self.data,
            *([self.fx] if self.fx is not None else []),
            *self.strategies,
            *self.risk,
            self.broker,
            *self.costs,
            *self.fill_models,
        ]

    def to_dict(self, mask_secrets: bool = True) -> dict[str, Any]:
        """The canonical form: always ``strategies`` (with ids), every param with its default
        filled in, dates as ISO strings, secrets masked unless ``mask_secrets=False``. Keys
        whose value is ``None`` are left out (TOML has no null), so is ``fx`` when there is
        none. JSON- and TOML-serialisable."""
        fx = {"fx": self.fx.to_dict(mask_secrets)} if self.fx is not None else {}
        return {
            "mode": self.mode.value,
            "data": self.data.to_dict(mask_secrets),
            **fx,
            "strategies": [s.to_dict(mask_secrets) for s in self.strategies],
            "risk": [r.to_dict(mask_secrets) for r in self.risk],
            "broker": self.broker.to_dict(mask_secrets),
            "costs": [c.to_dict(mask_secrets) for c in self.costs],
            "fill_models": [f.to_dict(mask_secrets) for f in self.fill_models],
            "run": _dump_model(self.run, mask_secrets),
        }

    def to_toml(self, mask_secrets: bool = True) -> str:
        """The canonical form as TOML; loading it again gives the same deployment."""
        return tomli_w.dumps(self.to_dict(mask_secrets))

    def config_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`to_dict` with secrets masked."""
        canonical = json.dumps(
            self.to_dict(mask_secrets=True),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _dump_model(model: BaseModel, mask_secrets: bool) -> dict[str, Any]:
    """JSON-mode dump (secrets masked), with secrets restored when asked and Nones dropped."""
    shown = model.model_dump(mode="json", by_alias=True)
    raw = model.model_dump(mode="python", by_alias=True)
    if not mask_secrets:
        shown = _unmask(shown, raw)
    return _drop_none(_numbers(shown, raw))


def _unmask(shown: Any, raw: Any) -> Any:
    if isinstance(raw, (SecretStr, SecretBytes)):
        value = raw.get_secret_value()
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if isinstance(shown, dict) and isinstance(raw, dict):
        return {k: _unmask(v, raw.get(k)) for k, v in shown.items()}
    if isinstance(shown, list) and isinstance(raw, (list, tuple)) and len(shown) == len(raw):
        return [_unmask(s, r) for s, r in zip(shown, raw, strict=True)]
    return shown


def _numbers(shown: Any, raw: Any) -> Any:
    """Render Decimals as TOML/JSON numbers when a float represents them exactly."""
    if isinstance(raw, Decimal) and isinstance(shown, str) and raw.is_finite():
        as_float = float(raw)
        if Decimal(repr(as_float)) == raw:
            return int(raw) if raw == raw.to_integral_value() and "." not in shown else as_float
        return shown
    if isinstance(shown, dict) and isinstance(raw, dict):
        return {k: _numbers(v, raw.get(k)) for k, v in shown.items()}
    if isinstance(shown, list) and isinstance(raw, (list, tuple)) and len(shown) == len(raw):
        return [_numbers(s, r) for s, r in zip(shown, raw, strict=True)]
    return shown


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


# --- public entry points ---------------------------------------------------------------------


def load_raw(
    paths: Sequence[str | Path],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Compose the files, apply ``overrides`` and interpolate ``${env:...}``.

    ``overrides`` are ``"PATH=VALUE"`` strings as given to ``--set`` (VALUE parsed as TOML,
    falling back to a plain string), or a mapping ``{PATH: value}`` whose values are used as
    they are. ``env`` replaces :data:`os.environ`. The result is a plain dict without
    ``extends``. Raises :class:`ConfigError` for missing or invalid files and bad overrides.
    """
    return _load(paths, overrides, env).raw


def resolve(
    raw: Mapping[str, Any], host: PluginHost, *, source: str = _UNKNOWN_SOURCE
) -> ResolvedDeployment:
    """Validate a composed config (phase 1 and 2) against the components ``host`` knows.

    ``source`` names where ``raw`` came from in error messages.
    """
    origins = _Origins()
    if source != _UNKNOWN_SOURCE:
        origins.set((), source)
    return _resolve(raw, host, origins, [source])


def load_deployment(
    paths: Sequence[str | Path],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    host: PluginHost,
    env: Mapping[str, str] | None = None,
) -> ResolvedDeployment:
    """:func:`load_raw` then :func:`resolve`, with errors naming the file each value came from."""
    loaded = _load(paths, overrides, env)
    return _resolve(loaded.raw, host, loaded.origins, loaded.sources)


# --- where values came from ------------------------------------------------------------------


class _Origins:
    """Which file (or ``--set``) each node of the config tree came from."""

    def __init__(self) -> None:
        self._by_loc: dict[Loc, str] = {}

    def set(self, loc: Loc, origin: str) -> None:
        self.drop_below(loc)
        self._by_loc[loc] = origin

    def set_root(self, origin: str) -> None:
        """Where keys no file set (e.g. a missing required key) are reported."""
        self._by_loc.setdefault((), origin)

    def drop_below(self, loc: Loc) -> None:
        for key in [k for k in self._by_loc if len(k) > len(loc) and k[: len(loc)] == loc]:
            del self._by_loc[key]

    def drop(self, loc: Loc) -> None:
        self.drop_below(loc)
        self._by_loc.pop(loc, None)

    def of(self, loc: Loc) -> str | None:
        for n in range(len(loc), -1, -1):
            origin = self._by_loc.get(loc[:n])
            if origin is not None:
                return origin
        return None

    def copy_from(self, other: _Origins, loc: Loc) -> None:
        """Take ``other``'s origins for the subtree at ``loc`` (replacing ours)."""
        self.drop_below(loc)
        self._by_loc.pop(loc, None)
        top = other.of(loc)
        if top is not None:
            self._by_loc[loc] = top
        for key, origin in other._by_loc.items():
            if len(key) > len(loc) and key[: len(loc)] == loc:
                self._by_loc[key] = origin


def _fmt_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY_RE.match(part) else json.dumps(part)
            out += f".{key}" if out else key
    return out


# --- composition -----------------------------------------------------------------------------


@dataclass
class _Loaded:
    raw: dict[str, Any]
    origins: _Origins
    sources: list[str]


def _load(
    paths: Sequence[str | Path],
    overrides: Sequence[str] | Mapping[str, Any],
    env: Mapping[str, str] | None,
) -> _Loaded:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if isinstance(overrides, str):
        overrides = [overrides]
    if not paths:
        raise ConfigError("no config file given; pass one or more TOML files (or -c FILE)")
    raw: dict[str, Any] = {}
    origins = _Origins()
    sources: list[str] = []
    for path in paths:
        tree, tree_origins = _compose_file(Path(path), str(path), (), sources)
        _merge(raw, origins, tree, tree_origins, ())
    if len(paths) == 1:
        origins.set_root(str(paths[0]))
    _apply_overrides(raw, origins, overrides)
    raw = _interpolate(raw, os.environ if env is None else env, origins, ())
    return _Loaded(raw, origins, sources)


def _compose_file(
    path: Path, shown: str, chain: tuple[tuple[Path, str], ...], sources: list[str]
) -> tuple[dict[str, Any], _Origins]:
    """Load ``path`` with its ``extends`` applied underneath it.

    ``chain`` holds the files (resolved, as shown) whose ``extends`` led here.
    """
    real = path.resolve()
    if real in [r for r, _ in chain]:
        names = [name for _, name in chain] + [shown]
        raise ConfigError(
            f"extends cycle: {' -> '.join(names)}; remove one of these `extends` entries"
        )
    data = _read_toml(path, shown)
    extends = data.pop("extends", [])
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        raise ConfigError(
            f'expected a list of file paths, e.g. extends = ["base.toml"] (in {shown})',
            path="extends",
        )
    result: dict[str, Any] = {}
    origins = _Origins()
    for entry in extends:
        base = Path(entry)
        if not base.is_absolute():
            base = path.parent / base
        if not base.is_file():
            raise ConfigError(
                f"file {entry!r} not found (looked for {base}); paths in `extends` are "
                f"relative to the file that names them (in {shown})",
                path="extends",
            )
        tree, tree_origins = _compose_file(base, str(base), (*chain, (real, shown)), sources)
        _merge(result, origins, tree, tree_origins, ())
    own = _Origins()
    own.set((), shown)
    _merge(result, origins, data, own, ())
    if shown not in sources:
        sources.append(shown)
    return result, origins


def _read_toml(path: Path, shown: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {shown}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {shown} is a directory; pass a TOML file") from None
    except PermissionError:
        raise ConfigError(f"config file {shown} is not readable (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)$", text)
        if where:
            reason = text[: where.start()]
            raise ConfigError(
                f"{shown}:{where[1]}:{where[2]}: invalid TOML: {reason} "
                f"(line {where[1]}, column {where[2]})"
            ) from None
        raise ConfigError(f"{shown}: invalid TOML: {text}") from None


_COMPONENT_SLOTS = ("data", "strategy", "broker", "fx")
_EXCLUSIVE = {"strategy": "strategies", "strategies": "strategy"}


def _merge(
    base: dict[str, Any],
    base_origins: _Origins,
    overlay: Mapping[str, Any],
    overlay_origins: _Origins,
    loc: Loc,
) -> None:
    """Merge ``overlay`` into ``base`` in place: tables recursively, everything else replaced."""
    if not loc:
        # A later file's `strategy` replaces an earlier `strategies` and vice versa (within one
        # file, having both stays an error for validation to report).
        for key, other in _EXCLUSIVE.items():
            if key in overlay and other not in overlay and other in base:
                del base[other]
                base_origins.drop((other,))
    for key, value in overlay.items():
        here = (*loc, key)
        current = base.get(key)
        same_component = not (
            not loc
            and key in _COMPONENT_SLOTS
            and isinstance(current, dict)
            and isinstance(value, dict)
            and "type" in value
            and current.get("type") != value["type"]
        )
        if isinstance(current, dict) and isinstance(value, dict) and same_component:
            _merge(current, base_origins, value, overlay_origins, here)
        else:
            base[key] = copy.deepcopy(value)
            base_origins.copy_from(overlay_origins, here)


# --- --set overrides -------------------------------------------------------------------------

_SET_FORM = (
    "expected --set PATH=VALUE, e.g. --set run.initial_cash=50000 or "
    "--set strategies[0].params.fast=5"
)
_FIRST_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NEXT_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")


def _parse_override_path(text: str, arg: str) -> Loc:
    """``strategies[0].params.fast`` -> ``("strategies", 0, "params", "fast")``."""
    first = _FIRST_KEY.match(text)
    if first is None:
        raise ConfigError(f"--set {arg}: invalid path {text!r}; {_SET_FORM}")
    parts: list[str | int] = [first[0]]
    pos = first.end()
    while pos < len(text):
        match = _NEXT_PART.match(text, pos)
        if match is None:
            raise ConfigError(f"--set {arg}: invalid path {text!r}; {_SET_FORM}")
        parts.append(match[1] if match[1] is not None else int(match[2]))
        pos = match.end()
    return tuple(parts)


def _parse_override_value(text: str) -> Any:
    """A TOML value (``20``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``, ``2020-01-01``), else the
    text itself."""
    stripped = text.strip()
    if not stripped or "\n" in stripped:
        return text
    try:
        parsed = tomllib.loads(f"v = {stripped}")
    except tomllib.TOMLDecodeError:
        return text
    return parsed["v"] if list(parsed) == ["v"] else text


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _apply_overrides(
    raw: dict[str, Any], origins: _Origins, overrides: Sequence[str] | Mapping[str, Any]
) -> None:
    if isinstance(overrides, Mapping):
        items = [(str(k), f"{k}=...", v, False) for k, v in overrides.items()]
    else:
        items = []
        for arg in overrides:
            if "=" not in arg:
                raise ConfigError(f"--set {arg}: missing '='; {_SET_FORM}")
            key, _, value = arg.partition("=")
            items.append((key, arg, value, True))
    for key, arg, value, parse in items:
        text = key.strip()
        if not text:
            raise ConfigError(f"--set {arg}: empty path before '='; {_SET_FORM}")
        loc = _parse_override_path(text, arg)
        if loc[0] == "extends":
            raise ConfigError(
                f"--set {arg}: `extends` cannot be overridden (files are already composed); "
                f"pass more files with -c FILE instead"
            )
        _set_path(raw, loc, _parse_override_value(value) if parse else value, arg)
        # The origin names the path, not the value: the value may be a secret.
        origins.set(loc, f"--set {text}")


def _set_path(raw: dict[str, Any], loc: Loc, value: Any, arg: str) -> None:
    node: Any = raw
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        where = _fmt_loc(loc[:depth]) or "the top level"
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ConfigError(
                    f"--set {arg}: {where} is {_kind_of(node)}, not an array, so [{part}] "
                    f"cannot index it; {_SET_FORM}"
                )
            if part >= len(node):
                raise ConfigError(
                    f"--set {arg}: index {part} is out of range ({where} has {len(node)} "
                    f"entr{'y' if len(node) == 1 else 'ies'}); {_SET_FORM}"
                )
        else:
            if not isinstance(node, dict):
                raise ConfigError(
                    f"--set {arg}: {where} is {_kind_of(node)}, not a table, so it has no key "
                    f"{part!r}; {_SET_FORM}"
                )
            if not last and part not in node:
                if isinstance(loc[depth + 1], int):
                    hint = ""
                    if loc[: depth + 1] == ("strategies",) and "strategy" in raw:
                        hint = " (this config has a single `strategy`: use strategy.<key>)"
                    raise ConfigError(
                        f"--set {arg}: {_fmt_loc(loc[: depth + 1])} is not set, so it cannot "
                        f"be indexed{hint}; {_SET_FORM}"
                    )
                node[part] = {}
        if last:
            node[part] = copy.deepcopy(value)
        else:
            node = node[part]


# --- ${env:NAME} interpolation ---------------------------------------------------------------

_ENV_RE = re.compile(
    r"\$\$\{"  # escaped: $${ -> ${
    r"|\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<bad>\$\{env:[^}]*\}?)"
)


def _interpolate(value: Any, env: Mapping[str, str], origins: _Origins, loc: Loc) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, origins, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, origins, (*loc, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        if match["bad"] is not None:
            raise _config_error(
                loc,
                f"malformed environment reference {match['bad']!r}; write ${{env:NAME}} or "
                f"${{env:NAME:-default}}",
                origins.of(loc),
            )
        name, default = match["name"], match["default"]
        found = env.get(name)
        if default is not None and not found:
            return default
        if found is None:
            raise _config_error(
                loc,
                f"environment variable {name} is not set; export it (export {name}=...) or "
                f"give a default with ${{env:{name}:-default}}",
                origins.of(loc),
            )
        return found

    return _ENV_RE.sub(substitute, value)


# --- validation ------------------------------------------------------------------------------


@dataclass
class _Problem:
    loc: Loc
    message: str
    origin: str | None

    def render(self) -> str:
        where = f" (in {self.origin})" if self.origin else ""
        path = _fmt_loc(self.loc)
        return f"{path}: {self.message}{where}" if path else f"{self.message}{where}"


def _config_error(loc: Loc, message: str, origin: str | None) -> ConfigError:
    return _problems_error([_Problem(loc, message, origin)])


def _problems_error(problems: list[_Problem]) -> ConfigError:
    if len(problems) == 1:
        problem = problems[0]
        where = f" (in {problem.origin})" if problem.origin else ""
        return ConfigError(f"{problem.message}{where}", path=_fmt_loc(problem.loc) or None)
    lines = "\n".join(f"  {p.render()}" for p in problems)
    error = ConfigError(f"{len(problems)} problems in the deployment config:\n{lines}")
    error.path = _fmt_loc(problems[0].loc) or None
    return error


_KIND_LABEL = {
    Kind.DATA_SOURCE: "data source",
    Kind.STRATEGY: "strategy",
    Kind.RISK_RULE: "risk rule",
    Kind.BROKER: "broker",
    Kind.COST_MODEL: "cost model",
    Kind.FILL_MODEL: "fill model",
}


def _resolve(
    raw: Mapping[str, Any], host: PluginHost, origins: _Origins, sources: list[str]
) -> ResolvedDeployment:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the deployment config must be a table, got {_kind_of(raw)}")
    # Phase 1: the outer shape.
    try:
        outer = DeploymentConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise _problems_error(_problems(exc, (), DeploymentConfig, origins)) from None
    if outer.extends:
        raise _config_error(
            ("extends",),
            "files are composed when they are loaded; pass the file paths to "
            "load_deployment() / load_raw() instead of a dict that still has `extends`",
            origins.of(("extends",)),
        )

    # Phase 2: each component's own params and capabilities. Problems are collected across
    # components so one run of `tradeloom config validate` reports all of them.
    problems: list[_Problem] = []

    def component(loc: Loc, kind: Kind, slot: ComponentConfig, sid: str | None = None) -> Any:
        return _resolve_component(loc, kind, slot, sid, outer.mode, host, origins, problems)

    data = component(("data",), Kind.DATA_SOURCE, outer.data)
    strategies = [
        component(loc, Kind.STRATEGY, s, s.id or s.type) for loc, s in outer.strategy_slots()
    ]
    risk = [component(("risk", i), Kind.RISK_RULE, r) for i, r in enumerate(outer.risk)]
    broker = component(("broker",), Kind.BROKER, outer.broker)
    costs = [component(("costs", i), Kind.COST_MODEL, c) for i, c in enumerate(outer.costs)]
    fill_models = [
        component(("fill_models", i), Kind.FILL_MODEL, f) for i, f in enumerate(outer.fill_models)
    ]
    fx = component(("fx",), Kind.DATA_SOURCE, outer.fx) if outer.fx is not None else None
    if problems:
        raise _problems_error(problems)
    config = _masked_config(outer, data, strategies, risk, broker, costs, fill_models, fx)
    return ResolvedDeployment(
        config=config,
        data=data,
        strategies=strategies,
        risk=risk,
        broker=broker,
        run=outer.run,
        mode=outer.mode,
        sources=list(sources),
        costs=costs,
        fill_models=fill_models,
        fx=fx,
        store_url=outer.store.url if outer.store is not None else None,
    )


def _resolve_component(
    loc: Loc,
    kind: Kind,
    slot: ComponentConfig,
    sid: str | None,
    mode: Mode,
    host: PluginHost,
    origins: _Origins,
    problems: list[_Problem],
) -> ResolvedComponent | None:
    try:
        spec = host.registry.get(kind, slot.type)
    except UnknownComponent as exc:
        problems.append(_Problem((*loc, "type"), str(exc), origins.of((*loc, "type"))))
        return None
    model: type[BaseModel] = spec.params_model
    try:
        params = model.model_validate(slot.params)
    except ValidationError as exc:
        problems.extend(_problems(exc, (*loc, "params"), model, origins))
        return None
    except Exception as exc:  # a bug in the plugin's validators, not a config mistake
        raise PluginError(
            f"{_fmt_loc(loc)}.params: validating the params of {_KIND_LABEL[kind]} "
            f"{spec.name!r} ({spec.distribution} {spec.version}) raised "
            f"{type(exc).__name__}: {exc}; report this to the plugin's authors"
        ) from exc
    capabilities = getattr(spec.cls, "capabilities", None)
    modes = getattr(capabilities, "modes", None)
    if modes is not None and mode not in modes:
        supported = ", ".join(sorted(m.value for m in modes)) or "none"
        origin = origins.of((*loc, "type"))
        mode_origin = origins.of(("mode",))
        mode_from = f" (mode set in {mode_origin})" if mode_origin not in (None, origin) else ""
        problems.append(
            _Problem(
                (*loc, "type"),
                f"{_KIND_LABEL[kind]} {spec.name!r} ({spec.distribution} {spec.version}) does "
                f"not support mode {mode.value!r} (it supports: {supported}); choose a "
                f"{_KIND_LABEL[kind]} that supports {mode.value} or change `mode`{mode_from}",
                origin,
            )
        )
        return None
    # `Params` subclasses are the norm; the registry accepts any pydantic model.
    return ResolvedComponent(path=_fmt_loc(loc), spec=spec, params=cast(Params, params), id=sid)


def _masked_config(
    outer: DeploymentConfig,
    data: ResolvedComponent,
    strategies: list[ResolvedComponent],
    risk: list[ResolvedComponent],
    broker: ResolvedComponent,
    costs: list[ResolvedComponent],
    fill_models: list[ResolvedComponent],
    fx: ResolvedComponent | None,
) -> DeploymentConfig:
    """``outer`` with each component's params replaced by its validated, masked JSON form."""

    def masked(slot: ComponentConfig, component: ResolvedComponent) -> Any:
        return slot.model_copy(update={"params": _dump_model(component.params, True)})

    update: dict[str, Any] = {
        "data": masked(outer.data, data),
        "risk": [masked(s, c) for s, c in zip(outer.risk, risk, strict=True)],
        "broker": masked(outer.broker, broker),
        "costs": [masked(s, c) for s, c in zip(outer.costs, costs, strict=True)],
        "fill_models": [masked(s, c) for s, c in zip(outer.fill_models, fill_models, strict=True)],
    }
    if outer.fx is not None and fx is not None:
        update["fx"] = masked(outer.fx, fx)
    if outer.strategy is not None:
        update["strategy"] = masked(outer.strategy, strategies[0])
    else:
        update["strategies"] = [
            masked(s, c) for s, c in zip(outer.strategies or [], strategies, strict=True)
        ]
    return outer.model_copy(update=update)


# --- pydantic errors -> one line per problem -------------------------------------------------

_SECRET_TYPES = (SecretStr, SecretBytes)


def _problems(
    exc: ValidationError, prefix: Loc, model: type[BaseModel], origins: _Origins
) -> list[_Problem]:
    """Turn a pydantic error into problems with full paths, one per path.

    Errors from the members of a union land on the same path and are joined with "or"; when some
    member got past the value's type (its errors are deeper), only that member's errors count.
    """
    walked = [(err, *_walk_loc(model, tuple(err["loc"]))) for err in exc.errors(include_url=False)]
    deepest: dict[Loc, int] = {}
    for _, rel, _, _, union_at in walked:
        if union_at is not None:
            deepest[union_at] = max(deepest.get(union_at, 0), len(rel))
    messages: dict[Loc, list[str]] = {}
    inputs: dict[Loc, str] = {}
    for err, rel, secret, parent, union_at in walked:
        if union_at is not None and len(rel) < deepest[union_at]:
            continue
        message, got, show_got = _describe(err, parent)
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _PathError):
            rel = (*rel, *ctx_error.path)
            got, show_got = ctx_error.got, ctx_error.got is not None
        loc = (*prefix, *rel)
        if err["type"] == "missing" and loc in _MISSING_HINTS:
            message = _MISSING_HINTS[loc]
        if message not in messages.setdefault(loc, []):
            messages[loc].append(message)
        if show_got:
            inputs.setdefault(loc, MASK if secret else _show(got))
    return [
        _Problem(
            loc,
            " or ".join(texts) + (f" (got {inputs[loc]})" if loc in inputs else ""),
            origins.of(loc),
        )
        for loc, texts in messages.items()
    ]


_MISSING_HINTS: dict[Loc, str] = {
    ("data",): "missing; every deployment needs a data source: add a [data] table with its "
    "`type` and `params` (`tradeloom plugins list` shows the installed ones)",
}


def _describe(err: Mapping[str, Any], parent: type[BaseModel] | None) -> tuple[str, Any, bool]:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        if parent is None:
            return "unknown key", value, False
        keys = [f.alias or name for name, f in parent.model_fields.items()]
        if not keys:
            return "unknown key; this component takes no parameters", value, False
        return f"unknown key; valid keys: {', '.join(keys)}", value, False
    if kind == "missing":
        return "missing required key", value, False
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return "expected a table", value, True
    if kind in {"list_type", "tuple_type", "set_type"}:
        return "expected an array", value, True
    message = str(err["msg"])
    for noise in ("Value error, ", "Assertion failed, "):
        if message.startswith(noise):
            message = message[len(noise) :]
    return message, value, True


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, datetime, time)):
        return value.isoformat()
    if isinstance(value, _SECRET_TYPES):
        return MASK
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` wrappers."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _mentions_secret(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, _SECRET_TYPES):
        return True
    return any(_mentions_secret(a) for a in get_args(annotation))


def _walk_loc(
    model: type[BaseModel], loc: Loc
) -> tuple[Loc, bool, type[BaseModel] | None, Loc | None]:
    """Follow a pydantic error location through the model's types.

    Returns the location without pydantic's union-member tags (``'int'``, ``'function-after'``),
    whether it points into a secret field, the model owning the last key (for listing the valid
    keys of an unknown one) and where the first union on the way is (``None`` if there is none).
    """
    annotation: Any = model
    cleaned: list[str | int] = []
    secret = False
    union_at: Loc | None = None
    parent: type[BaseModel] | None = model if len(loc) <= 1 else None
    for index, part in enumerate(loc):
        annotation = _unwrap(annotation)
        is_last = index == len(loc) - 1
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if is_last:
                parent = annotation
            fields = annotation.model_fields
            name = (
                part
                if part in fields
                else next((n for n, f in fields.items() if f.alias == part), None)
            )
            cleaned.append(part)
            annotation = fields[name].annotation if name is not None else Any
            if name is not None and _mentions_secret(annotation):
                secret = True
            continue
        origin = get_origin(annotation)
        if isinstance(part, int) and origin in (list, tuple, set, frozenset, Sequence):
            cleaned.append(part)
            args = get_args(annotation)
            annotation = args[0] if args else Any
            continue
        if origin in (dict, Mapping) and isinstance(part, str):
            cleaned.append(part)
            args = get_args(annotation)
            annotation = args[1] if len(args) == 2 else Any
            continue
        if origin in (Union, UnionType) and isinstance(part, str):
            # A union-member tag; keep walking through the member it names, if recognisable.
            member = next((a for a in get_args(annotation) if _is_member(a, part)), None)
            annotation = member if member is not None else Any
            union_at = tuple(cleaned) if union_at is None else union_at
            continue
        if isinstance(part, str) and _looks_like_tag(part) and annotation is Any:
            continue
        cleaned.append(part)
        annotation = Any
    return tuple(cleaned), secret, parent, union_at


def _is_member(annotation: Any, tag: str) -> bool:
    """Does pydantic's union tag ``tag`` name this member (by type name or discriminator)?"""
    member = _unwrap(annotation)
    if getattr(member, "__name__", None) == tag:
        return True
    if isinstance(member, type) and issubclass(member, BaseModel):
        for info in member.model_fields.values():
            field_type = _unwrap(info.annotation)
            if get_origin(field_type) is Literal and tag in get_args(field_type):
                return True
    return False


_TAG_RE = re.compile(
    r"^(int|float|str|bool|bytes|none|decimal|date|datetime|time|timedelta|uuid|url|"
    r"lax-or-strict|json-or-python|function-(after|before|wrap|plain)\[.*\]|"
    r"[a-z-]+\[.*\])$"
)


def _looks_like_tag(part: str) -> bool:
    return bool(_TAG_RE.match(part))


# --- JSON Schema -----------------------------------------------------------------------------


def json_schema(host: PluginHost) -> dict[str, Any]:
    """The JSON Schema of a deployment with the components installed in ``host``.

    Each component slot is a ``oneOf`` over the installed components of its kind, each
    ``{type: <const name>, params: <that component's Params schema>}``; descriptions come from
    the models' attribute docstrings.
    """
    members: dict[Kind, list[type[BaseModel]]] = {
        kind: [_member_model(spec) for spec in host.registry.specs(kind)] for kind in Kind
    }
    keys: list[tuple[type[BaseModel], Literal["validation"]]] = [(DeploymentConfig, "validation")]
    keys += [(m, "validation") for kind in Kind for m in members[kind]]
    refs, top = models_json_schema(keys)
    defs: dict[str, Any] = top.get("$defs", {})
    root_ref = refs[(DeploymentConfig, "validation")]["$ref"].split("/")[-1]
    root = defs.pop(root_ref)

    def one_of(kind: Kind, fallback: type[BaseModel]) -> dict[str, Any]:
        if not members[kind]:
            return {
                "$ref": f"#/$defs/{fallback.__name__}",
                "description": f"(no {_KIND_LABEL[kind]} is installed)",
            }
        return {"oneOf": [refs[(m, "validation")] for m in members[kind]]}

    fields = DeploymentConfig.model_fields
    props = root["properties"]
    props["data"] = {
        "description": fields["data"].description,
        **one_of(Kind.DATA_SOURCE, ComponentConfig),
    }
    props["strategy"] = {
        "description": fields["strategy"].description,
        **one_of(Kind.STRATEGY, StrategyConfig),
    }
    props["strategies"] = {
        "description": fields["strategies"].description,
        "type": "array",
        "minItems": 1,
        "items": one_of(Kind.STRATEGY, StrategyConfig),
    }
    props["risk"] = {
        "description": fields["risk"].description,
        "type": "array",
        "default": [],
        "items": one_of(Kind.RISK_RULE, ComponentConfig),
    }
    props["broker"] = {
        "description": fields["broker"].description,
        "default": {"type": "simulated"},
        **one_of(Kind.BROKER, ComponentConfig),
    }
    props["costs"] = {
        "description": fields["costs"].description,
        "type": "array",
        "default": [],
        "items": one_of(Kind.COST_MODEL, ComponentConfig),
    }
    props["fill_models"] = {
        "description": fields["fill_models"].description,
        "type": "array",
        "default": [],
        "items": one_of(Kind.FILL_MODEL, ComponentConfig),
    }
    props["fx"] = {
        "description": fields["fx"].description,
        **one_of(Kind.DATA_SOURCE, ComponentConfig),
    }
    for name in props:
        props[name].setdefault("title", name.replace("_", " ").capitalize())
    # Either `strategy` or `strategies`, exactly one.
    root["oneOf"] = [{"required": ["strategy"]}, {"required": ["strategies"]}]
    # Fallback models are only referenced when a kind has nothing installed.
    for fallback in (ComponentConfig, StrategyConfig):
        defs.setdefault(fallback.__name__, fallback.model_json_schema())
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tradeloom deployment",
        **{k: v for k, v in root.items() if k != "title"},
    }
    schema["$defs"] = defs
    _prune_defs(schema)
    return schema


def _member_model(spec: ComponentSpec) -> type[BaseModel]:
    """A model ``{type: Literal[name], params: Params}`` (plus ``id`` for strategies)."""
    params_model: type[BaseModel] = spec.params_model
    required = any(f.is_required() for f in params_model.model_fields.values())
    name_type: Any = Literal[spec.name]  # type: ignore[valid-type]
    fields: dict[str, Any] = {
        "type": (name_type, Field(description=f"Registered name: {spec.name}.")),
    }
    if spec.kind is Kind.STRATEGY:
        fields["id"] = (
            str | None,
            Field(default=None, description=StrategyConfig.model_fields["id"].description),
        )
    fields["params"] = (
        params_model,
        Field(description=f"Parameters of {spec.name!r}.")
        if required
        else Field(default_factory=dict, description=f"Parameters of {spec.name!r}."),
    )
    label = re.sub(r"[^A-Za-z0-9]+", "_", f"{spec.kind.value}_{spec.name}")
    description = spec.description or f"The {_KIND_LABEL[spec.kind]} {spec.name!r}."
    return create_model(
        label,
        __config__=ConfigDict(
            extra="forbid",
            title=f"{_KIND_LABEL[spec.kind]} {spec.name}",
            json_schema_extra={
                "description": f"{description} (from {spec.distribution} {spec.version})"
            },
        ),
        **fields,
    )


def _prune_defs(schema: dict[str, Any]) -> None:
    """Drop ``$defs`` entries nothing refers to."""
    defs: dict[str, Any] = schema["$defs"]
    reachable: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.split("/")[-1]
                if name not in reachable and name in defs:
                    reachable.add(name)
                    visit(defs[name])
            for key, value in node.items():
                if key != "$defs":
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(schema)
    schema["$defs"] = {name: defs[name] for name in sorted(defs) if name in reachable}
    if not schema["$defs"]:
        del schema["$defs"]
