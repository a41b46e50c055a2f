"""The baseline report: the JSON `baseline --format json` prints, which the tables and the chart draw."""

from __future__ import annotations

from typing import Any

from ..core.baseline import DAY_SECONDS
from ..core.samples import as_number
from .reading import BaselineData


def baseline_report(store: str, days: int, end: float, data: BaselineData) -> dict[str, Any]:
    """{"prometheus", "start", "end", "pairs": {PAIR: {"scrape_interval_seconds", "days", "summary"}}}."""
    return {
        "prometheus": store, "start": as_number(end - days * DAY_SECONDS), "end": as_number(end),
        "pairs": {pair: data.reports[pair] for pair in data.pairs},
    }


def error_report(store: str, days: int, end: float, error: str) -> dict[str, Any]:
    """The report when the store could not be read: no pairs, and why."""
    return {"prometheus": store, "start": end - days * DAY_SECONDS, "end": end, "error": error, "pairs": {}}
