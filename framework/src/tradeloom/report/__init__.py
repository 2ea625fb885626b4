"""Metrics and the HTML report of a run.

``tradeloom.report.html`` (and with it plotly) is imported only when
:func:`write_html_report` is first used, so computing metrics stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradeloom.report.metrics import Metrics, compute_metrics, infer_periods_per_year

if TYPE_CHECKING:
    from tradeloom.report.html import write_html_report

__all__ = ["Metrics", "compute_metrics", "infer_periods_per_year", "write_html_report"]


def __getattr__(name: str) -> Any:
    if name == "write_html_report":
        from tradeloom.report.html import write_html_report

        return write_html_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
