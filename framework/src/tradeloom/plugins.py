"""Plugin discovery and the component registry.

A :class:`PluginHost` is built explicitly (there is no module-level singleton). Building one

1. registers the kernel's own built-in components (``tradeloom.builtins``) through the same
   hooks a third-party plugin uses;
2. loads every entry point in the group ``tradeloom``, each inside its own ``try``: a plugin
   that fails to import, implements an unknown hook, raises in a register hook or registers an
   invalid component is recorded as failed (distribution, version, error) and contributes
   nothing, while every other plugin keeps working;
3. collects the components into a :class:`Registry` by kind and name.

Environment: ``TRADELOOM_DISABLE_PLUGINS=a,b`` skips plugins by entry-point or distribution
name; ``TRADELOOM_STRICT_PLUGINS=1`` turns any plugin failure into an immediate
:class:`~tradeloom.errors.PluginError` (for plugin authors and CI).
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from tradeloom import hookspecs
from tradeloom.components import Component, Kind
from tradeloom.errors import PluginError

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")

_HOOK_FOR_KIND = {
    Kind.STRATEGY: "tradeloom_register_strategies",
    Kind.DATA_SOURCE: "tradeloom_register_data_sources",
    Kind.RISK_RULE: "tradeloom_register_risk_rules",
    Kind.BROKER: "tradeloom_register_brokers",
    Kind.COST_MODEL: "tradeloom_register_cost_models",
    Kind.FILL_MODEL: "tradeloom_register_fill_models",
}


def _base_class(kind: Kind) -> type[Component]:
    # Imported lazily: these modules import heavier things (pandas, numpy).
    if kind is Kind.STRATEGY:
        from tradeloom.strategy import Strategy

        return Strategy
    if kind is Kind.DATA_SOURCE:
        from tradeloom.data import DataSource

        return DataSource
    if kind is Kind.RISK_RULE:
        from tradeloom.risk import RiskRule

        return RiskRule
    if kind is Kind.COST_MODEL:
        from tradeloom.execution.cost_models import CostModel

        return CostModel
    if kind is Kind.FILL_MODEL:
        from tradeloom.execution.fills import FillModel

        return FillModel
    from tradeloom.execution import Broker

    return Broker


@dataclass(frozen=True)
class ComponentSpec:
    """One registered component."""

    kind: Kind
    name: str
    cls: type[Component]
    distribution: str
    version: str
    plugin: str
    description: str = ""

    @property
    def params_model(self) -> type:
        return self.cls.Params

    @property
    def capabilities(self) -> Any:
        return self.cls.capabilities

    def build(self, params: Mapping[str, Any] | None = None) -> Component:
        """Instantiate the component, validating ``params`` with its ``Params`` model."""
        return self.cls(self.cls.Params(**dict(params or {})))


@dataclass
class PluginRecord:
    """What happened to one plugin (an entry point, or the kernel's built-ins)."""

    name: str
    distribution: str
    version: str
    status: str  # "loaded", "failed" or "disabled"
    error: str | None = None
    components: list[tuple[Kind, str]] = field(default_factory=list)


class UnknownComponent(LookupError):
    """Raised by :meth:`Registry.get`; carries what is needed for a helpful message."""

    def __init__(self, kind: Kind, name: str, choices: list[str], hint: str) -> None:
        self.kind, self.name, self.choices, self.hint = kind, name, choices, hint
        listed = ", ".join(choices) if choices else "(none installed)"
        super().__init__(
            f"unknown {kind.value.replace('_', ' ')} type {name!r}; installed: {listed}. {hint}"
        )


class Registry:
    """Components by kind and name."""

    def __init__(self) -> None:
        self._specs: dict[Kind, dict[str, ComponentSpec]] = {k: {} for k in Kind}
        self._conflicts: dict[tuple[Kind, str], list[ComponentSpec]] = {}
        self.failed_plugins: list[PluginRecord] = []

    def add(self, spec: ComponentSpec) -> None:
        existing = self._specs[spec.kind].get(spec.name)
        if existing is not None:
            self._conflicts.setdefault((spec.kind, spec.name), [existing]).append(spec)
            raise PluginError(duplicate_message(existing, spec))
        self._specs[spec.kind][spec.name] = spec

    def remove_plugin(self, plugin: str) -> None:
        for specs in self._specs.values():
            for name in [n for n, s in specs.items() if s.plugin == plugin]:
                del specs[name]

    def get(self, kind: Kind, name: str) -> ComponentSpec:
        conflict = self._conflicts.get((kind, name))
        if conflict:
            raise PluginError(duplicate_message(*conflict[:2]))
        try:
            return self._specs[kind][name]
        except KeyError:
            raise UnknownComponent(kind, name, self.names(kind), self._hint(kind, name)) from None

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._specs[kind])

    def specs(self, kind: Kind | None = None) -> list[ComponentSpec]:
        kinds = [kind] if kind else list(Kind)
        return [self._specs[k][n] for k in kinds for n in sorted(self._specs[k])]

    def _hint(self, kind: Kind, name: str) -> str:
        hint = (
            f"Install the distribution that provides it (third-party packages are usually named "
            f"'tradeloom-<name>', e.g. `uv pip install tradeloom-{name}`), then check "
            f"`tradeloom plugins list`."
        )
        if self.failed_plugins:
            failed = ", ".join(f"{p.distribution} ({p.error})" for p in self.failed_plugins)
            hint += f" Plugins that failed to load: {failed}."
        return hint


def duplicate_message(first: ComponentSpec, second: ComponentSpec) -> str:
    return (
        f"duplicate {first.kind.value.replace('_', ' ')} name {first.name!r}: registered by both "
        f"{first.distribution} {first.version} and {second.distribution} {second.version}; "
        f"uninstall one of them or disable one with TRADELOOM_DISABLE_PLUGINS"
    )


def _env_list(value: str | None) -> set[str]:
    return {item.strip() for item in (value or "").split(",") if item.strip()}


class PluginHost:
    """Discovers plugins and holds the component registry. Build one per process or test.

    ``entry_points`` replaces discovery (tests pass their own); ``env`` replaces
    :data:`os.environ` for the ``TRADELOOM_*`` switches.
    """

    def __init__(
        self,
        *,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
        env: Mapping[str, str] | None = None,
        builtins: bool = True,
    ) -> None:
        env = os.environ if env is None else env
        self.disabled = _env_list(env.get("TRADELOOM_DISABLE_PLUGINS"))
        self.strict = env.get("TRADELOOM_STRICT_PLUGINS", "").strip().lower() in {
            "1",
            "true",
            "yes",
        }
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: list[PluginRecord] = []

        if builtins:
            from tradeloom import builtins as builtin_module

            self._add_plugin(
                "tradeloom", "tradeloom", _dist_version("tradeloom"), lambda: builtin_module
            )
        if entry_points is None:
            entry_points = metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)
        for ep in sorted(entry_points, key=lambda e: (_dist_name(e), e.name)):
            dist, version = _dist_name(ep), _dist_version_of(ep)
            if ep.name in self.disabled or dist in self.disabled:
                self.plugins.append(PluginRecord(ep.name, dist, version, "disabled"))
                continue
            self._add_plugin(ep.name, dist, version, ep.load)

    @property
    def hook(self) -> Any:
        """The lifecycle hooks, e.g. ``host.hook.tradeloom_run_start(...)``."""
        return self.pm.hook

    def _add_plugin(self, name: str, dist: str, version: str, load: Any) -> None:
        record = PluginRecord(name, dist, version, "loaded")
        plugin_id = f"{dist}:{name}"
        registered = False
        try:
            obj = load()
            self.pm.register(obj, name=plugin_id)
            registered = True
            self._check_hooks(plugin_id)
            self._collect(record, plugin_id)
        except Exception as exc:  # one broken plugin must not take the host down
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            record.components = []
            self.registry.remove_plugin(plugin_id)
            if registered:
                self.pm.unregister(name=plugin_id)
            self.registry.failed_plugins.append(record)
            self.plugins.append(record)
            if self.strict:
                raise PluginError(
                    f"plugin {name!r} from {dist} {version} failed to load "
                    f"(TRADELOOM_STRICT_PLUGINS is set): {record.error}"
                ) from exc
            record.traceback = traceback.format_exc()  # type: ignore[attr-defined]
            return
        self.plugins.append(record)

    def _check_hooks(self, plugin_id: str) -> None:
        plugin = self.pm.get_plugin(plugin_id)
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                raise PluginError(
                    f"implements unknown hook {caller.name!r}; known hooks start with "
                    f"'tradeloom_' and are listed in tradeloom.hookspecs"
                )

    def _collect(self, record: PluginRecord, plugin_id: str) -> None:
        plugin = self.pm.get_plugin(plugin_id)
        for kind, hook_name in _HOOK_FOR_KIND.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue

                def register(
                    name: str,
                    cls: type[Component],
                    *,
                    description: str | None = None,
                    _kind: Kind = kind,
                ) -> None:
                    spec = _make_spec(_kind, name, cls, record, plugin_id, description)
                    self.registry.add(spec)
                    record.components.append((_kind, name))

                impl.function(register=register)

    def spec(self, kind: Kind, name: str) -> ComponentSpec:
        return self.registry.get(kind, name)


def _make_spec(
    kind: Kind,
    name: str,
    cls: type[Component],
    record: PluginRecord,
    plugin_id: str,
    description: str | None,
) -> ComponentSpec:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PluginError(
            f"invalid {kind.value} name {name!r}: names match ^[a-z][a-z0-9_-]*$ "
            f"(lower case, digits, '-' and '_')"
        )
    base = _base_class(kind)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(
            f"{kind.value} {name!r} must be a subclass of {base.__module__}.{base.__qualname__}, "
            f"got {cls!r}"
        )
    from pydantic import BaseModel

    if not (isinstance(cls.Params, type) and issubclass(cls.Params, BaseModel)):
        raise PluginError(f"{kind.value} {name!r}: Params must be a pydantic model")
    if description is None:
        doc = (cls.__doc__ or "").strip()
        description = doc.splitlines()[0] if doc else ""
    return ComponentSpec(
        kind, name, cls, record.distribution, record.version, plugin_id, description
    )


def _dist_name(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.module


def _dist_version_of(ep: metadata.EntryPoint) -> str:
    return ep.dist.version if ep.dist is not None else "unknown"


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"
