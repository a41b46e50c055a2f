"""Validation of what a bot passes to the hooks: each bad value becomes a `BadInput` with a counted kind.

Pure functions; the hooks in `telemetry.py` call them and count the kind instead of raising into the bot.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

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
    "invalid_count",
    "malformed_kraken_reply",
    "malformed_kraken_row",
    "clock_went_backwards",
    "window_overflow",
    "txid_table_full",
    "internal_error",
)



class BadInput(ValueError):
    """Raised inside the hooks only, caught there and counted under `kind`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_volume(value: Any, name: str) -> float:
    """A Kraken volume (a string like "13.00000000", or a number) as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise BadInput("invalid_volume", f"{name}={value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise BadInput("invalid_volume", f"{name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise BadInput("invalid_volume", f"{name}={value!r} is not finite")
    if number < 0:
        raise BadInput("negative_volume", f"{name}={value!r} is negative")
    return number


def parse_count(value: Any, name: str) -> int:
    """An order or slot count: a non-negative integer (an integral float is accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput("invalid_count", f"{name}={value!r} is not a count")
    if value < 0 or value != int(value):
        raise BadInput("invalid_count", f"{name}={value!r} is not a non-negative integer")
    return int(value)


def plain_volume(value: Any) -> str:
    try:
        return f"{float(value):.8f}"
    except (TypeError, ValueError):
        return repr(value)
