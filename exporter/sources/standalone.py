"""Standalone mode: what Kraken alone can tell, for operators who do not embed the library in their bot.

Our poller feeds a telemetry per pair; nothing feeds the bot-side hooks, so the fields that need the bot
(internal counts, drift, slots) are unknown. They are null in `/api/status`, named in `unknown_fields`, and absent
from /metrics. With Kraken's `executions` stream (`events=`, once it has sent its first snapshot) the partial fills
and fill times are known from Kraken's own events and the band is the whole spec's; without it they are unknown
too and the band reflects capacity only (`events_source` says which). With Kraken unavailable there is
no count at all: the pair is blind (`blind=True`, no block) and `problems` says why, rather than a zero that looks
like headroom; the pair stays in /metrics with `krakenbot_pair_blind 1`.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from ..core.reading import PairReading
from ..core.telemetry import CapacityTelemetry

INTERNAL_FIELDS = (
    "open_orders_internal",
    "open_orders_drift",
    "orders_per_slot_estimate",
    "estimated_slots_remaining",
)
EVENT_FIELDS = (
    "partial_fill_open_events_1d",
    "partial_fill_cancel_events_1d",
    "median_fill_seconds_1d",
    "p95_fill_seconds_1d",
)
BOT_SIDE_FIELDS = INTERNAL_FIELDS + EVENT_FIELDS
EVENTS_FROM_STREAM = "kraken_stream"
_CAPACITY_HINTS = ("near_open_order_cap", "open_order_caution")
_EVENT_HINTS = ("partial_fill_open_pressure", "partial_fill_cancel_detected")


class EventsSource(Protocol):
    """What feeds the partial fills and fill times (`KrakenStream`)."""

    @property
    def events_known(self) -> bool: ...

    @property
    def rate_known(self) -> bool: ...


class _TelemetrySource:
    """A `PairSource` over one telemetry, with what the stream knows of its events (if anything)."""

    def __init__(self, telemetry: CapacityTelemetry, events: EventsSource | None = None) -> None:
        self.telemetry = telemetry
        self.events = events

    @property
    def pair(self) -> str:
        return self.telemetry.pair


class StandaloneSource(_TelemetrySource):
    """A `PairSource` over a Kraken-fed telemetry, hiding what only the bot could know (and, without the stream,
    the partial fills and fill times)."""

    def reading(self) -> PairReading:
        reading = self.telemetry.reading()
        health = reading.health
        streamed = self.events is not None and self.events.events_known
        unknown = INTERNAL_FIELDS if streamed else BOT_SIDE_FIELDS
        source = EVENTS_FROM_STREAM if streamed else None
        if not (streamed and self.events is not None and self.events.rate_known):
            # the order rate counter comes from the stream's order events: unknown without them, and while the stream
            # is down (the events of the gap are not in any snapshot: the counter would decay to a confident 0)
            reading = dataclasses.replace(reading, order_rate=None)
        if health is None or health.open_orders_kraken is None:
            return dataclasses.replace(
                reading, health=None, slot_count=None, unknown_fields=unknown, blind=True, events_source=source,
                problem="no fresh Kraken open-order count, and standalone mode has no internal count to fall back on",
            )
        kept = _CAPACITY_HINTS + _EVENT_HINTS if streamed else _CAPACITY_HINTS
        reason = ("partial fills and fill times from Kraken's executions stream" if streamed
                  else "capacity only: partial fills are unknown in standalone mode without Kraken's stream")
        health = dataclasses.replace(
            health, **{name: None for name in unknown}, blocked_risk_hint=[h for h in health.blocked_risk_hint if h in kept],
            status_reason=f"{health.status_reason}; {reason}",
        )
        return dataclasses.replace(reading, health=health, slot_count=None, unknown_fields=unknown, events_source=source,
                                   blind=False, problem=None)  # a fresh Kraken count is all serve needs


class StreamEventsSource(_TelemetrySource):
    """A `PairSource` over a bot-fed telemetry whose partial fills and fill times come from Kraken's stream (the
    demo: the simulated bot tells its own counts, the stream its orders): the reading as it is, with `events_source`
    once the stream knows them."""

    events: EventsSource

    def __init__(self, telemetry: CapacityTelemetry, events: EventsSource) -> None:
        super().__init__(telemetry, events)

    def reading(self) -> PairReading:
        reading = self.telemetry.reading()
        if reading.order_rate is not None and not self.events.rate_known:  # as in StandaloneSource
            reading = dataclasses.replace(reading, order_rate=None)
        return dataclasses.replace(reading, events_source=EVENTS_FROM_STREAM) if self.events.events_known else reading
