"""`KrakenCount`: the pair's open orders as Kraken last reported them, and the drift run against the bot's count.

A count is used while it is at most `stale_after` seconds old; after that (or after a failed refresh) the block
falls back to the internal count. The drift is judged at Kraken refreshes: a run starts at the first refresh whose
|kraken − internal| reaches `drift_threshold`, ends at one below it (or after a stale gap), and becomes
`open_order_drift_persistent` once it has lasted `drift_persist_seconds`. The telemetry's lock guards it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .pairs import PairNames

MATCH_CACHE_SIZE = 1024


class KrakenCount:
    __slots__ = ("at", "count", "drift_persist_seconds", "drift_since", "drift_threshold", "stale_after")

    def __init__(self, stale_after: float, drift_threshold: int, drift_persist_seconds: float) -> None:
        self.stale_after = stale_after
        self.drift_threshold = drift_threshold
        self.drift_persist_seconds = drift_persist_seconds
        self.count: int | None = None
        self.at: float | None = None  # when Kraken's reply was fetched
        self.drift_since: float | None = None

    def is_older(self, at: float) -> bool:
        """A snapshot fetched at `at` is older than the one recorded (it must not replace it)."""
        return self.at is not None and at < self.at

    def record(self, count: int, at: float, internal: int) -> None:
        """A Kraken refresh fetched at `at`: judge the drift run here, against the internal count of this moment."""
        if self.at is None or at - self.at > self.stale_after:
            self.drift_since = None  # a stale gap (or no data before) ends a drift run
        self.count, self.at = count, at
        if abs(count - internal) < self.drift_threshold:
            self.drift_since = None
        elif self.drift_since is None:
            self.drift_since = at

    def clear(self) -> None:
        """The latest refresh failed: no count, no drift run."""
        self.count = self.at = self.drift_since = None

    def fresh(self, now: float) -> int | None:
        """The count if it is not stale at `now`, else None."""
        if self.count is None or self.at is None or now - self.at > self.stale_after:
            return None
        return self.count

    def drift_persistent(self, now: float, internal: int) -> bool:
        """The fresh count has drifted from `internal` by the threshold or more, in a run at least the persist time."""
        count, since = self.fresh(now), self.drift_since
        return count is not None and since is not None and abs(count - internal) >= self.drift_threshold \
            and now - since >= self.drift_persist_seconds


def count_rows(rows: Mapping[Any, Any], names: PairNames, cache: dict[str, bool]) -> tuple[int, int]:
    """Rows of the pair `names` spells, and malformed rows, in an OpenOrders `open` mapping (`cache`: pair -> match)."""
    count = malformed = 0
    for row in rows.values():
        try:
            pair = row["descr"]["pair"]
        except Exception:
            malformed += 1
            continue
        match = cache.get(pair) if type(pair) is str else None
        if match is None:
            if not isinstance(pair, str):
                malformed += 1
                continue
            match = names.matches(pair)
            if len(cache) < MATCH_CACHE_SIZE and type(pair) is str:
                cache[pair] = match
        if match:
            count += 1
    return count, malformed
