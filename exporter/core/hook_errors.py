"""`HookErrors`: what the hooks could not record, counted by kind, and logged at most once a minute per kind.

Every rejected input is counted as exactly one kind (`inputs.HOOK_ERROR_KINDS`; `/metrics` exports them as
`krakenbot_hook_errors_total`) and changes nothing else. Conditions of accepted calls (`clock_went_backwards`,
`window_overflow`, `txid_table_full`) are counted too, without a log line. The counts are the telemetry's: they share
its lock, and readers get a copy.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from . import logtext

log = logging.getLogger("kraken_capacity_exporter")

LOG_EVERY_SECONDS = 60.0


class HookErrors:
    __slots__ = ("_counts", "_last_logged", "_lock", "pair")

    def __init__(self, lock: threading.Lock, pair: str) -> None:
        self._lock = lock  # the telemetry's
        self.pair = pair  # for the log line
        self._counts: dict[str, int] = {}  # a plain dict: a Counter's item access is slower on this path
        self._last_logged: dict[str, float] = {}

    def note(self, kind: str, n: int = 1) -> None:
        """Count a condition of an accepted call (not a rejection): no log line; the lock is held."""
        self._counts[kind] = self._counts.get(kind, 0) + n

    def reject(self, now: float | None, kind: str, reason: str, field: str, value: Any) -> None:
        """Count one rejected input (taking the lock), and log it at most once a minute per kind.

        `now` None: no usable time (a broken clock): then only the 1st, 2nd, 4th, 8th … rejection is logged.
        """
        lock, counts = self._lock, self._counts
        lock.acquire()  # (not `with`: bad input in a flood costs at most twice good input, and `with` costs 50 ns)
        try:
            count = counts.get(kind, 0) + 1
            counts[kind] = count
            if now is None:
                should_log = count & (count - 1) == 0
            else:
                last = self._last_logged.get(kind)
                should_log = last is None or not 0.0 <= now - last < LOG_EVERY_SECONDS
                if should_log:
                    self._last_logged[kind] = now
        finally:
            lock.release()
        if should_log:
            log.warning("capacity telemetry hook rejected input pair=%s kind=%s: %s=%s %s",
                        self.pair, kind, field, logtext.text(value), reason)

    def internal_error(self, exc: Exception) -> None:
        """A hook failed on a bug of ours: counted as `internal_error`, never raised into the bot's loop."""
        with contextlib.suppress(Exception):  # the lock failed too: nothing left to do without raising
            self.reject(None, "internal_error", "", "error", f"{type(exc).__name__}: {logtext.text(exc)}")

    def copy(self) -> dict[str, int]:
        """The counts by kind (a plain dict); the lock is held."""
        return dict(self._counts)
