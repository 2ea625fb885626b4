"""Entry point of {{ cookiecutter.distribution }}.

tradeloom imports this module through the entry point declared in ``pyproject.toml``::

    [project.entry-points.tradeloom]
    {{ cookiecutter.slug }} = "{{ cookiecutter.package }}.plugin"

and calls the hooks below, each marked with ``@tradeloom.hookimpl``.
"""

from __future__ import annotations

import tradeloom
from tradeloom.hookspecs import Register

from {{ cookiecutter.package }}.strategy import {{ cookiecutter.class_name }}


@tradeloom.hookimpl
def tradeloom_register_strategies(register: Register) -> None:
    """Register ``{{ cookiecutter.slug }}``: the ``type`` a deployment's ``[strategy]`` names."""
    register("{{ cookiecutter.slug }}", {{ cookiecutter.class_name }})
