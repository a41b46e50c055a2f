"""Validation of what a bot passes to the hooks, and of the library's own settings.

Hook inputs: each checker returns the parsed value, or a `Rejected` naming the counted kind — no exception on
the hook path (raising and catching costs more than the whole hook). Settings: `check_settings` raises
`ValueError`, because a bad limit or ratio is the embedding code's bug, not poll-loop input.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, NamedTuple

# Every kind of bad input a hook can meet; the counter's label values are created up front.
HOOK_ERROR_KINDS = (
    "invalid_txid",
    "invalid_status",
    "unknown_status",
    "invalid_volume",
    "negative_volume",
    "vol_exec_exceeds_vol",
    "invalid_placed_at",
    "placed_at_in_future",
    "invalid_closed_at",
    "closed_at_in_future",
    "invalid_count",
    "invalid_fetched_at",
    "invalid_clock",
    "invalid_rate_counter",
    "invalid_reason",
    "malformed_kraken_reply",
    "malformed_kraken_row",
    "clock_went_backwards",
    "window_overflow",
    "txid_table_full",
    "internal_error",
)

MAX_TXID_LENGTH = 128  # Kraken txids are 19 characters; a longer "txid" is not one, and would cost memory
MAX_COUNT = 1_000_000_000  # an order or slot count above this is not a count (and would overflow the ratios)
ORDER_STATUSES = frozenset({"open", "closed", "canceled", "expired", "pending"})


_IN_FUTURE = {"invalid_placed_at": "placed_at_in_future", "invalid_closed_at": "closed_at_in_future"}


class Rejected(NamedTuple):
    """Why a value was rejected: the counted `kind` and a short reason (formatted only when logged)."""

    kind: str
    reason: str


def check_volume(value: Any) -> float | Rejected:
    """A Kraken volume (a string like "13.00000000", or an int, float or Decimal) as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, (str, float, int, Decimal)):
        return Rejected("invalid_volume", "is not a number")
    try:
        number = float(value)
    except (ValueError, OverflowError, ArithmeticError):
        return Rejected("invalid_volume", "is not a finite number")
    if number - number != 0.0:  # NaN or ±inf
        return Rejected("invalid_volume", "is not finite")
    if number < 0.0:
        return Rejected("negative_volume", "is negative")
    return number


def check_count(value: Any) -> int | Rejected:
    """An order or slot count: an integer (or integral float) from 0 to MAX_COUNT."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Rejected("invalid_count", "is not a count")
    if isinstance(value, float) and not (value.is_integer() and 0.0 <= value <= MAX_COUNT):
        return Rejected("invalid_count", "is not a non-negative integer up to 10^9")
    if not 0 <= value <= MAX_COUNT:
        return Rejected("invalid_count", "is not a non-negative integer up to 10^9")
    return int(value)


def check_timestamp(value: Any, now: float, kind: str) -> float | Rejected:
    """A Unix time: a finite int or float, > 0 and not after `now`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Rejected(kind, "is not a timestamp")
    try:
        stamp = float(value)
    except OverflowError:
        return Rejected(kind, "is not a finite timestamp")
    if stamp - stamp != 0.0 or stamp <= 0.0:
        return Rejected(kind, "is not a positive finite timestamp")
    if stamp > now:
        return Rejected(_IN_FUTURE.get(kind, kind), "is after now")
    return stamp


def check_txid(value: Any) -> str | Rejected:
    """A non-empty string of at most MAX_TXID_LENGTH characters (a str subclass is read as a plain str)."""
    if type(value) is not str:
        if not isinstance(value, str):
            return Rejected("invalid_txid", "is not a string")
        value = str.__str__(value)
    if not 0 < len(value) <= MAX_TXID_LENGTH:
        return Rejected("invalid_txid", f"is empty or longer than {MAX_TXID_LENGTH} characters")
    return value


def check_status(value: Any) -> str | Rejected:
    """One of Kraken's order statuses, case-insensitive."""
    if not isinstance(value, str):
        return Rejected("invalid_status", "is not a string")
    status = str.lower(value)
    if status not in ORDER_STATUSES:
        return Rejected("unknown_status", "is not a Kraken order status")
    return status


def check_settings(
    limit: Any, safety_ratio: Any, *, drift_threshold: Any = 1, max_window_events: Any = 1, **limits: Any
) -> tuple[int, float]:
    """The library's settings, or ValueError naming the bad one: limit >= 1, ratio in (0, 1], limits >= 0,
    drift_threshold and max_window_events integers >= 1."""
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not _integral_at_least_one(limit):
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
    if isinstance(safety_ratio, bool) or not isinstance(safety_ratio, (int, float, Decimal)) \
            or not 0 < float(safety_ratio) <= 1:
        raise ValueError(f"safety_ratio must be in (0, 1], got {safety_ratio!r}")
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    for name, value in (("drift_threshold", drift_threshold), ("max_window_events", max_window_events)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(limit), float(safety_ratio)


def _integral_at_least_one(value: int | float) -> bool:
    return value >= 1 if isinstance(value, int) else math.isfinite(value) and value.is_integer() and value >= 1
