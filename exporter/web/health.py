"""`/healthz`: does every configured pair have usable data now? `/livez` only says the process serves.

A pair is unhealthy when its source says it is blind (`PairReading.blind`) or has no block at all
(`health is None`): then the stop signal is gone, and a health check must not say "ok".

With a `--web-config-file`, the body also says whether the file on disk is the version in force (`web_config`): a
refused reload keeps the previous version serving, so it is reported here without changing the status code.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.reading import PairReading
from ..core.version import __version__
from .view import ExporterView
from .web_config import WebConfigFile


def _age(now: float, then: float | None) -> float | None:
    if then is None or not math.isfinite(then):
        return None
    return round(max(0.0, now - then), 3)


def _finite(value: float | None) -> float | None:
    return round(value, 3) if value is not None and math.isfinite(value) else None


def pair_health(reading: PairReading, now: float) -> dict[str, Any]:
    """One pair's entry: whether it is blind, why, and how old its data is."""
    blind = reading.blind
    entry: dict[str, Any] = {
        "status": "blind" if blind else "ok",
        "kraken_data_available": reading.kraken_data_available,
        "kraken_data_age_seconds": _finite(reading.kraken_data_age_seconds),
        "last_update_age_seconds": _age(now, reading.last_update),
    }
    if reading.health is not None:
        entry["open_orders_source"] = reading.health.open_orders_source
    if blind:
        entry["reason"] = reading.problem or "no usable data"
    elif reading.problem:
        entry["problem"] = reading.problem
    return entry


def web_config_health(reload_error: str | None) -> dict[str, Any]:
    """The web config's entry: `reload_failed`, and why (naming the refused key) while it is."""
    return {"reload_failed": True, "reason": reload_error} if reload_error else {"reload_failed": False}


def health_payload(exporter: ExporterView, web: WebConfigFile | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when every pair has usable data, else 503 naming each blind pair and why."""
    code, body = _pairs_health(exporter)
    if web is not None:
        body["web_config"] = web_config_health(web.reload_error)
    return code, body


def _pairs_health(exporter: ExporterView) -> tuple[int, dict[str, Any]]:
    now = exporter.clock.now()
    pairs = {r.pair: pair_health(r, now) for r in exporter.readings()}
    blind = sorted(p for p, entry in pairs.items() if entry["status"] != "ok")
    if not pairs:
        return 503, {"status": "blind", "reason": "no pair is configured", "blind": [], "version": __version__,
                     "pairs": pairs}
    if blind:
        reason = "; ".join(f"{p}: {pairs[p]['reason']}" for p in blind)
        return 503, {"status": "blind", "reason": reason, "blind": blind, "version": __version__, "pairs": pairs}
    return 200, {"status": "ok", "version": __version__, "pairs": pairs}
