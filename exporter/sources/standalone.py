"""Standalone mode: what Kraken alone can tell, for operators who do not embed the library in their bot.

Our poller feeds a telemetry per pair; nothing feeds the bot-side hooks, so the fields that need the bot
(internal counts, drift, slots, partial fills, fill times) are unknown. They are null in `/api/status`, named in
`unknown_fields`, and absent from /metrics. The band then reflects capacity only. With Kraken unavailable there is
no count at all: the pair is blind (`blind=True`, no block) and `problems` says why, rather than a zero that looks
like headroom; the pair stays in /metrics with `krakenbot_pair_blind 1`.
"""

from __future__ import annotations

import dataclasses

from ..core.reading import PairReading
from ..core.telemetry import CapacityTelemetry

BOT_SIDE_FIELDS = (
    "open_orders_internal",
    "open_orders_drift",
    "orders_per_slot_estimate",
    "estimated_slots_remaining",
    "partial_fill_open_events_1d",
    "partial_fill_cancel_events_1d",
    "median_fill_seconds_1d",
    "p95_fill_seconds_1d",
)


class StandaloneSource:
    """A `PairSource` over a Kraken-fed telemetry, hiding what only the bot could know."""

    def __init__(self, telemetry: CapacityTelemetry) -> None:
        self.telemetry = telemetry

    @property
    def pair(self) -> str:
        return self.telemetry.pair

    def reading(self) -> PairReading:
        reading = self.telemetry.reading()
        health = reading.health
        if health is None or health.open_orders_kraken is None:
            return dataclasses.replace(
                reading, health=None, slot_count=None, unknown_fields=BOT_SIDE_FIELDS, blind=True,
                problem="no fresh Kraken open-order count, and standalone mode has no internal count to fall back on",
            )
        hints = [h for h in health.blocked_risk_hint if h in ("near_open_order_cap", "open_order_caution")]
        health = dataclasses.replace(
            health, **{name: None for name in BOT_SIDE_FIELDS}, blocked_risk_hint=hints,
            status_reason=f"{health.status_reason}; capacity only: partial fills are unknown in standalone mode",
        )
        return dataclasses.replace(reading, health=health, slot_count=None, unknown_fields=BOT_SIDE_FIELDS,
                                   blind=False, problem=None)  # a fresh Kraken count is all serve needs
