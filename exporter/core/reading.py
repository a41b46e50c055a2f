"""`PairReading`: one pair's state at one instant — what /metrics and /api/status both render.

Every data source (the embedded hooks, the Kraken poller feeding them, a scraped bot's /api/status)
produces these, so the collector and the HTTP app never care where the numbers came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .capacity import SOURCE_KRAKEN, CapacityFillHealth
from .counters import EventCounts
from .order_rate import RateReading


@dataclass(frozen=True)
class PairReading:
    pair: str
    health: CapacityFillHealth | None  # None: the source has no data (e.g. a scraped bot is down)
    safety_ratio: float | None = None
    slot_count: int | None = None
    kraken_data_age_seconds: float | None = None
    last_update: float | None = None
    unknown_fields: tuple[str, ...] = ()  # fields this source cannot know (standalone mode): null in the block
    invalid_fields: tuple[str, ...] = ()  # fields a scraped bot sent missing or mistyped: null in the block
    problem: str | None = None  # why there is no data, or what is wrong with it, in a sentence
    blind: bool = False  # no usable data now (always so when health is None); `problem` says why
    window_started_at: float | None = None  # since when the 24h windows have been counting (None: unknown)
    forecast_seconds_to_stop: float | None = None  # the headroom's 6h trend reaches the stop edge in this long
    counts: EventCounts | None = None  # event counters of a telemetry fed by hooks (None: the source has none)
    events_source: str | None = None  # where partial fills and fill times come from, when a source says (serve)
    order_rate: RateReading | None = None  # Kraken's order rate counter (None: this source cannot know it)

    def __post_init__(self) -> None:
        if self.health is None and not self.blind:  # no data at all is blind, whatever the source said
            object.__setattr__(self, "blind", True)

    @property
    def kraken_data_available(self) -> bool:
        """A fresh Kraken count is what the block's numbers stand on (False with no data at all)."""
        return self.health is not None and self.health.open_orders_source == SOURCE_KRAKEN


class PairSource(Protocol):
    """Anything that can describe one pair now."""

    @property
    def pair(self) -> str: ...

    def reading(self) -> PairReading: ...
