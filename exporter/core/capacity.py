"""Capacity math, source selection, bands and risk hints: pure functions of one snapshot of inputs.

Everything here follows `CAPACITY_TELEMETRY_SPEC.md` v0.1.1 and the reference bot's stable output
(robjohncolson/doge-grid-bot). Where the two differ, the spec wins and the difference is noted inline.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import lru_cache

from .thresholds import CAUTION_HEADROOM, DEFAULT_LIMIT, DEFAULT_SAFETY_RATIO, STOP_HEADROOM  # noqa: F401

SOURCE_KRAKEN = "kraken"
SOURCE_INTERNAL = "internal_fallback"
SOURCES = (SOURCE_KRAKEN, SOURCE_INTERNAL)

BAND_NORMAL = "normal"
BAND_CAUTION = "caution"
BAND_STOP = "stop"
BANDS = (BAND_NORMAL, BAND_CAUTION, BAND_STOP)
BAND_VALUE = {BAND_NORMAL: 0, BAND_CAUTION: 1, BAND_STOP: 2}


HINT_KRAKEN_UNAVAILABLE = "kraken_open_orders_unavailable"
HINT_DRIFT_PERSISTENT = "open_order_drift_persistent"
HINT_NEAR_CAP = "near_open_order_cap"
HINT_CAUTION = "open_order_caution"
HINT_PARTIAL_OPEN = "partial_fill_open_pressure"
HINT_PARTIAL_CANCEL = "partial_fill_cancel_detected"
# The reference bot's codes, in its order; its users' tools read them.
HINTS = (
    HINT_KRAKEN_UNAVAILABLE,
    HINT_DRIFT_PERSISTENT,
    HINT_NEAR_CAP,
    HINT_CAUTION,
    HINT_PARTIAL_OPEN,
    HINT_PARTIAL_CANCEL,
)



@lru_cache(maxsize=256)
def safe_cap(limit: int, safety_ratio: float) -> int:
    """`floor(limit * ratio)`, never below 1, of the exact decimal product: 300 × 0.41 is 123 here, while
    binary floats (and the reference bot) give 122 (300 * 0.41 == 122.99999999999999)."""
    return max(1, math.floor(Decimal(int(limit)) * Decimal(str(safety_ratio))))


def orders_per_slot(current: int, slot_count: int) -> float | None:
    """Open orders per slot, or None with no slots (nothing to divide by)."""
    return current / slot_count if slot_count > 0 else None


def estimated_slots_remaining(headroom: int, current: int, slot_count: int) -> int:
    """`floor(headroom / max(orders_per_slot, 1))` when headroom > 0, else 0, with orders per slot
    `current / slot_count` taken exactly: 35 / (7 / 3) is 15 here, where floats give 14.999999999999998 → 14.

    With no slots there is no basis for an estimate: 0, as the reference bot does. For orders per slot below 1
    (0 included) the spec's `max(…, 1)` gives `headroom`; the reference bot gives 0 for 0 and more than headroom
    between 0 and 1: we follow the spec.
    """
    if headroom <= 0 or slot_count <= 0:
        return 0
    if current <= slot_count:  # orders per slot <= 1
        return headroom
    return headroom * slot_count // current


def classify_band(headroom: int, partial_cancel_1d: int) -> str:
    """stop: headroom < 10 or any partial-cancel in 24h; caution: headroom < 20; else normal."""
    if headroom < STOP_HEADROOM or partial_cancel_1d > 0:
        return BAND_STOP
    if headroom < CAUTION_HEADROOM:
        return BAND_CAUTION
    return BAND_NORMAL


def band_reason(band: str, headroom: int, partial_cancel_1d: int) -> str:
    """The numbers behind the band in the words of its thresholds: `headroom 18 < 20`."""
    if band == BAND_STOP:
        reasons = []
        if partial_cancel_1d > 0:
            reasons.append(f"{partial_cancel_1d} partial-cancel in 24h > 0")
        if headroom < STOP_HEADROOM:
            reasons.append(f"headroom {headroom} < {STOP_HEADROOM}")
        return "; ".join(reasons)
    if band == BAND_CAUTION:
        return f"headroom {headroom} < {CAUTION_HEADROOM}"
    return f"headroom {headroom} >= {CAUTION_HEADROOM}, no partial-cancel in 24h"


def status_reason(band: str, headroom: int, partial_cancel_1d: int) -> str:
    """One plain sentence with the numbers behind the band, for the card and for people."""
    return f"{band_reason(band, headroom, partial_cancel_1d)} ({band})"


@dataclass(frozen=True)
class CapacityInputs:
    """Everything the status block is derived from, read at one instant."""

    limit: int = DEFAULT_LIMIT
    safety_ratio: float = DEFAULT_SAFETY_RATIO
    internal_open_orders: int = 0
    kraken_open_orders: int | None = None  # None: unavailable or stale
    slot_count: int = 0
    partial_open_1d: int = 0
    partial_cancel_1d: int = 0
    median_fill_seconds_1d: float | None = None
    p95_fill_seconds_1d: float | None = None
    drift_persistent: bool = False


@dataclass(frozen=True)
class CapacityFillHealth:
    """The spec's `capacity_fill_health` block; field order and names are the spec's table.

    `evaluate` fills every field. A source that cannot know a value (standalone mode has no bot-side counts; a
    scraped bot may send a field missing or mistyped) leaves it None, so every field is Optional here.
    """

    open_orders_current: int | None
    open_orders_source: str | None
    open_orders_internal: int | None
    open_orders_kraken: int | None
    open_orders_drift: int | None
    open_order_limit_configured: int | None
    open_orders_safe_cap: int | None
    open_order_headroom: int | None
    open_order_utilization_pct: float | None
    orders_per_slot_estimate: float | None
    estimated_slots_remaining: int | None
    partial_fill_open_events_1d: int | None
    partial_fill_cancel_events_1d: int | None
    median_fill_seconds_1d: float | None
    p95_fill_seconds_1d: float | None
    status_band: str | None
    blocked_risk_hint: list[str] = field(default_factory=list)
    status_reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


SPEC_FIELDS = tuple(f for f in CapacityFillHealth.__dataclass_fields__ if f != "status_reason")

# The spec's table: field -> JSON types allowed (`type(None)` where nullable). Floats accept JSON integers.
_NONE = type(None)
SPEC_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "open_orders_current": (int,),
    "open_orders_source": (str,),
    "open_orders_internal": (int,),
    "open_orders_kraken": (int, _NONE),
    "open_orders_drift": (int, _NONE),
    "open_order_limit_configured": (int,),
    "open_orders_safe_cap": (int,),
    "open_order_headroom": (int,),
    "open_order_utilization_pct": (float,),
    "orders_per_slot_estimate": (float, _NONE),
    "estimated_slots_remaining": (int,),
    "partial_fill_open_events_1d": (int,),
    "partial_fill_cancel_events_1d": (int,),
    "median_fill_seconds_1d": (float, _NONE),
    "p95_fill_seconds_1d": (float, _NONE),
    "status_band": (str,),
    "blocked_risk_hint": (list,),
}


def evaluate(inputs: CapacityInputs) -> CapacityFillHealth:
    """Derive the whole block from its inputs (spec sections 2, 3 and the band rules)."""
    limit = max(1, int(inputs.limit))
    cap = safe_cap(limit, inputs.safety_ratio)
    internal = int(inputs.internal_open_orders)
    kraken = inputs.kraken_open_orders
    source = SOURCE_KRAKEN if kraken is not None else SOURCE_INTERNAL
    current = kraken if kraken is not None else internal
    drift = kraken - internal if kraken is not None else None
    headroom = cap - current
    per_slot = orders_per_slot(current, int(inputs.slot_count))
    band = classify_band(headroom, inputs.partial_cancel_1d)

    hints = []
    if source == SOURCE_INTERNAL:
        hints.append(HINT_KRAKEN_UNAVAILABLE)
    if inputs.drift_persistent and kraken is not None:
        hints.append(HINT_DRIFT_PERSISTENT)
    if headroom < STOP_HEADROOM:
        hints.append(HINT_NEAR_CAP)
    elif headroom < CAUTION_HEADROOM:
        hints.append(HINT_CAUTION)
    if inputs.partial_open_1d > 0:
        hints.append(HINT_PARTIAL_OPEN)
    if inputs.partial_cancel_1d > 0:
        hints.append(HINT_PARTIAL_CANCEL)

    return CapacityFillHealth(
        open_orders_current=current,
        open_orders_source=source,
        open_orders_internal=internal,
        open_orders_kraken=kraken,
        open_orders_drift=drift,
        open_order_limit_configured=limit,
        open_orders_safe_cap=cap,
        open_order_headroom=headroom,
        open_order_utilization_pct=current / cap * 100.0,
        orders_per_slot_estimate=per_slot,
        estimated_slots_remaining=estimated_slots_remaining(headroom, current, int(inputs.slot_count)),
        partial_fill_open_events_1d=int(inputs.partial_open_1d),
        partial_fill_cancel_events_1d=int(inputs.partial_cancel_1d),
        median_fill_seconds_1d=inputs.median_fill_seconds_1d,
        p95_fill_seconds_1d=inputs.p95_fill_seconds_1d,
        status_band=band,
        blocked_risk_hint=hints,
        status_reason=status_reason(band, headroom, inputs.partial_cancel_1d),
    )
