"""``tradeloom.testing``: the contract test kit for plugin authors.

A plugin's tests subclass a contract and set a few attributes; pytest collects every ``test_*``
method the contract defines::

    from tradeloom.testing import StrategyContract

    class TestMyStrategy(StrategyContract):
        strategy_type = "my-strategy"
        params = {"fast": 5, "slow": 20}

The contracts are :class:`StrategyContract`, :class:`DataSourceContract`,
:class:`BrokerContract` and :class:`RiskRuleContract` (see ``docs/testing.md`` for every
check). The fixtures ``tradeloom_market``, ``tradeloom_deployment`` and ``tradeloom_host`` live
in :mod:`tradeloom.testing.plugin`, the pytest plugin.

Importing this package is cheap: the contracts (and pandas with them) are imported when first
named, so the pytest plugin costs nothing in a test run that uses none of them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from tradeloom.components import Component, Kind
    from tradeloom.testing.brokers import BrokerContract
    from tradeloom.testing.data_sources import DataSourceContract
    from tradeloom.testing.risk_rules import RiskRuleContract
    from tradeloom.testing.strategies import StrategyContract

__all__ = [
    "BrokerContract",
    "ComponentContract",
    "DataSourceContract",
    "RiskRuleContract",
    "StrategyContract",
]

_LAZY = {
    "StrategyContract": "tradeloom.testing.strategies",
    "DataSourceContract": "tradeloom.testing.data_sources",
    "BrokerContract": "tradeloom.testing.brokers",
    "RiskRuleContract": "tradeloom.testing.risk_rules",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tradeloom.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


class ComponentContract:
    """What every contract shares: finding the component under test (by registered name or
    class) and the checks of its ``Params`` model.

    Not collected by pytest itself (``__test__ = False``); a subclass is collected when its
    name starts with ``Test`` (``__init_subclass__`` sets ``__test__`` to that, unless the
    subclass sets ``__test__`` itself).
    """

    __test__ = False
    kind: ClassVar[str] = ""
    """The component kind (``tradeloom.components.Kind`` value); set by each contract."""
    params: ClassVar[dict[str, Any] | None] = None
    """A valid parameter set (default: the ``Params`` defaults)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            # pytest collects any class whose __test__ is True, whatever its name: only the
            # test classes (named Test*) are switched on, never an intermediate base.
            cls.__test__ = cls.__name__.startswith("Test")

    # --- the component ------------------------------------------------------------------------
    def _type_and_cls(self) -> tuple[str | None, type[Component] | None]:
        prefix = self._prefix()
        return getattr(self, f"{prefix}_type", None), getattr(self, f"{prefix}_cls", None)

    def _prefix(self) -> str:
        return {"data_source": "source", "risk_rule": "rule"}.get(self.kind, self.kind)

    def component_name(self) -> str:
        """The registered name, or the class name in lower case when only the class is given."""
        name, _ = self._type_and_cls()
        return name or self.component_class().__name__.lower()

    def component_class(self) -> type[Component]:
        """The class under test: ``<kind>_cls``, or the class registered under ``<kind>_type``
        in a fresh :class:`~tradeloom.plugins.PluginHost` (the installed plugins)."""
        name, cls = self._type_and_cls()
        prefix = self._prefix()
        if cls is not None:
            return cls
        if not name:
            raise TypeError(
                f"{type(self).__name__}: set {prefix}_type (the registered name) or {prefix}_cls "
                f"(the class) to say which {self.kind.replace('_', ' ')} the contract tests"
            )
        return _registered(self._kind(), name)

    def _kind(self) -> Kind:
        from tradeloom.components import Kind

        return Kind(self.kind)

    def make_params(self) -> dict[str, Any]:
        """The parameters the component is built with (``params``; override to compute them,
        e.g. paths of files written in a temporary folder)."""
        return dict(self.params or {})

    def build(self) -> Any:
        """A fresh component, built as the runner builds it: ``cls(cls.Params(**params))``."""
        cls = self.component_class()
        return cls(cls.Params(**self.make_params()))

    # --- Params checks (every contract) -------------------------------------------------------
    def test_params_model_is_a_strict_pydantic_model(self) -> None:
        """``Params`` is a pydantic model that validates the given params, refuses an unknown
        field (``extra="forbid"``) and is frozen."""
        import pydantic

        cls = self.component_class()
        model = cls.Params
        assert isinstance(model, type) and issubclass(model, pydantic.BaseModel), (
            f"{cls.__name__}.Params must be a pydantic model (subclass tradeloom.components."
            f"Params), got {model!r}"
        )
        try:
            valid = model(**self.make_params())
        except pydantic.ValidationError as exc:
            raise AssertionError(
                f"{cls.__name__}.Params refuses the contract's params {self.make_params()!r}: {exc}"
            ) from exc
        unknown = {**self.make_params(), "no_such_field_in_the_contract": 1}
        try:
            model(**unknown)
        except pydantic.ValidationError:
            pass
        else:
            raise AssertionError(
                f"{cls.__name__}.Params accepts an unknown field: its model_config needs "
                "extra='forbid' (subclass tradeloom.components.Params), so a typo in a "
                "config is an error rather than a silently ignored setting"
            )
        field = next(iter(type(valid).model_fields), None)
        if field is not None:
            try:
                setattr(valid, field, getattr(valid, field))
            except (pydantic.ValidationError, TypeError, AttributeError):
                pass
            else:
                raise AssertionError(
                    f"{cls.__name__}.Params is mutable: set frozen=True (subclass "
                    "tradeloom.components.Params) so a running component cannot change its "
                    "configuration"
                )

    def test_params_json_schema(self) -> None:
        """``Params`` has a JSON Schema (what ``tradeloom config schema`` prints): an object
        with ``additionalProperties: false`` and a description for every field (attribute
        docstrings)."""
        import json

        cls = self.component_class()
        try:
            schema = cls.Params.model_json_schema()
            json.dumps(schema)
        except Exception as exc:
            raise AssertionError(
                f"{cls.__name__}.Params has no JSON Schema: {type(exc).__name__}: {exc}"
            ) from exc
        assert schema.get("type") == "object", f"{cls.__name__}.Params schema: {schema!r}"
        if cls.Params.model_fields:
            assert schema.get("additionalProperties") is False, (
                f"{cls.__name__}.Params schema allows additional properties (extra='forbid' "
                "is missing)"
            )
        undocumented = sorted(
            name
            for name, prop in schema.get("properties", {}).items()
            if not (prop.get("description") or "").strip()
        )
        assert not undocumented, (
            f"{cls.__name__}.Params fields without a description: {', '.join(undocumented)}; "
            "document each field with an attribute docstring (it becomes its description in "
            "`tradeloom config schema`)"
        )


@functools.cache
def _registered(kind: Kind, name: str) -> type[Component]:
    from tradeloom.plugins import PluginHost

    return PluginHost().spec(kind, name).cls
