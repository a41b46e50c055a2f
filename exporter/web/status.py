"""The `/api/status` side: the spec's `capacity_fill_health` object as JSON-safe dicts.

`add_capacity_fill_health` is what an embedding bot calls inside its own status handler; it adds keys
and leaves every existing key as it was.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.pairs import canonical_label
from ..core.reading import PairReading
from ..core.telemetry import CapacityTelemetry
from ..core.windows import DAY_SECONDS
from .view import ExporterView


class UnknownPair(KeyError):
    """`?pair=` named a pair this process does not export."""


def health_dict(reading: PairReading, now: float | None = None) -> dict[str, Any] | None:
    """One pair's block with JSON-safe values (never NaN: a non-finite float becomes null).

    Beside the spec's fields: `forecast_hours_to_stop` (when the headroom's 6h trend reaches the stop edge; 0 once
    it is in the stop band; null above it while not falling, or with no history, as for a bare telemetry),
    `window_started_at` (since when the 24h windows have been counting, null when unknown) and `window_complete`
    (true once they have counted a whole day, so a restart never looks like a quiet day). In `serve`,
    `events_source` (after `open_orders_source`) says where partial fills and fill times come from:
    `"kraken_stream"`, or null when they are unknown.
    """
    if reading.health is None:
        return None
    block = reading.health.to_dict()
    for key, value in block.items():
        if isinstance(value, float) and not math.isfinite(value):
            block[key] = None
    seconds = reading.forecast_seconds_to_stop
    block["forecast_hours_to_stop"] = None if seconds is None else seconds / 3600.0
    started = reading.window_started_at
    block["window_started_at"] = started
    block["window_complete"] = started is not None and now is not None and now - started >= DAY_SECONDS
    if reading.events_source is not None or reading.unknown_fields:  # serve: where the partial fills come from
        block = _after(block, "open_orders_source", "events_source", reading.events_source)
    rate = reading.order_rate
    if rate is not None:  # the second capacity, beside the spec's fields (which stay as they are)
        block["order_rate_counter"] = rate.counter
        block["order_rate_threshold"] = rate.threshold
        block["order_rate_peak_1d"] = rate.peak_1d
        block["order_rate_limited_1d"] = rate.limited_1d
        block["order_rate_threshold_source"] = rate.threshold_source  # "kraken" (the account's maxratecount) or "tier"
        block["kraken_tier"] = rate.tier  # this pair's tier (add_pair(tier=) may differ from the exporter's default)
    if reading.unknown_fields:
        block["unknown_fields"] = list(reading.unknown_fields)
    if reading.invalid_fields:
        block["invalid_fields"] = list(reading.invalid_fields)
    return block


def _after(block: dict[str, Any], key: str, new_key: str, value: Any) -> dict[str, Any]:
    """`block` with `new_key` right after `key` (so `events_source` reads beside `open_orders_source`)."""
    out: dict[str, Any] = {}
    for k, v in block.items():
        out[k] = v
        if k == key:
            out[new_key] = value
    out.setdefault(new_key, value)
    return out


def status_payload(exporter: ExporterView, pair: str | None = None) -> dict[str, Any]:
    """What the exporter serves at /api/status: the chosen pair's block plus every pair's."""
    readings = exporter.readings()
    by_pair = {r.pair: r for r in readings}
    chosen = pair if pair is not None else (readings[0].pair if readings else None)
    if pair is not None and pair not in by_pair:
        chosen = canonical_label(pair)
        if chosen not in by_pair:
            raise UnknownPair(pair)
    now = exporter.clock.now()
    blocks = {p: health_dict(r, now) for p, r in by_pair.items()}
    payload = {
        "pair": chosen,
        "pairs": list(by_pair),
        "generated_at": now,
        "capacity_fill_health": blocks[chosen] if chosen else None,
        "capacity_fill_health_by_pair": blocks,
    }
    problems = {p: r.problem for p, r in by_pair.items() if r.problem}
    if problems:
        payload["problems"] = problems
    payload["mode"] = exporter.mode  # demo|serve|scrape|embedded: simulated data never passes for production
    payload["kraken_tier"] = exporter.tier  # the exporter's default tier (each pair's block says its own)
    return payload


def add_capacity_fill_health(
    status: dict[str, Any], source: CapacityTelemetry | ExporterView, pair: str | None = None
) -> dict[str, Any]:
    """Add `capacity_fill_health` (and, for an exporter, `capacity_fill_health_by_pair`) to a
    bot's status dict in place, and return it. No other key is read or changed."""
    if isinstance(source, CapacityTelemetry):
        reading = source.reading()  # on its own clock: one that is broken (NaN, inf) makes the pair blind, never raises
        now = source.clock.now()
        finite = isinstance(now, (int, float)) and math.isfinite(now)
        status["capacity_fill_health"] = health_dict(reading, now if finite else None)
        return status
    payload = status_payload(source, pair)
    status["capacity_fill_health"] = payload["capacity_fill_health"]
    status["capacity_fill_health_by_pair"] = payload["capacity_fill_health_by_pair"]
    return status

