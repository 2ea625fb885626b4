"""{{ cookiecutter.distribution }}: a strategy plugin for tradeloom.

{{ cookiecutter.description }}
"""

from {{ cookiecutter.package }}.strategy import {{ cookiecutter.class_name }}

__all__ = ["{{ cookiecutter.class_name }}"]
