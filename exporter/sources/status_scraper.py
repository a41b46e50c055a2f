"""The scraped source: mirror an existing bot's `/api/status` `capacity_fill_health` block, no bot change needed.

For operators of the reference bot (robjohncolson/doge-grid-bot) and any bot serving the spec's block. A
background thread fetches the URL every `interval` seconds with `requests`; a scrape or status read never
waits on the bot. Unknown extra keys are ignored. A missing or mistyped field is counted
(`krakenbot_status_field_errors_total{field=…}`), reported in `/api/status` (`invalid_fields`) and left out of
/metrics — never guessed. An unreachable bot exports `krakenbot_status_scrape_up 0` and no values at all, and the
pair is blind (`krakenbot_pair_blind 1`); so is a pair whose last good scrape is older than `stale_after` (a
scrape that hangs, a stopped worker).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from contextlib import suppress
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..core import defaults
from ..core.capacity import BANDS, SOURCES, SPEC_FIELD_TYPES, CapacityFillHealth, status_reason
from ..core.clock import Clock, SystemClock
from ..core.inputs import MAX_COUNT
from ..core.naming import PREFIX
from ..core.pairs import PairNames, canonical_label
from ..core.reading import PairReading
from .urls import redacted
from .worker import BackgroundWorker, default_stale_after

log = logging.getLogger("kraken_capacity_exporter.scrape")

SCRAPE_ERRORS = ("connection_error", "timeout", "http_error", "invalid_json", "no_capacity_block", "no_pair")
UNKNOWN_PAIR = "unknown"


class ScrapeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(f"{PREFIX}_status_scrape_up", "1 when the bot's /api/status was fetched and had the block.",
                        ["pair"], registry=registry)
        self.last_success = Gauge(f"{PREFIX}_status_scrape_last_success_timestamp_seconds",
                                  "Unix time of the last good scrape of the bot's /api/status.", ["pair"], registry=registry)
        self.errors = Counter(f"{PREFIX}_status_scrape_errors", "Failed scrapes of the bot's /api/status by reason.",
                              ["pair", "reason"], registry=registry)
        self.field_errors = Counter(f"{PREFIX}_status_field_errors",
                                    "Scraped capacity_fill_health fields that were missing or mistyped.",
                                    ["pair", "field"], registry=registry)


def _plausible(number: int | float) -> bool:
    """A finite number no larger than any count could be (a bot's 10**400 is a mistyped field, not a count)."""
    try:
        return math.isfinite(float(number)) and abs(number) <= MAX_COUNT
    except OverflowError:
        return False


def _valid(name: str, value: Any) -> bool:
    allowed = SPEC_FIELD_TYPES[name]
    if isinstance(value, bool):
        return False
    if value is None:
        return type(None) in allowed
    if float in allowed and isinstance(value, (int, float)):
        return _plausible(value)
    if not isinstance(value, allowed):
        return False
    if isinstance(value, int):
        return _plausible(value)
    if name == "status_band":
        return value in BANDS
    if name == "open_orders_source":
        return value in SOURCES
    if name == "blocked_risk_hint":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return True


def parse_block(block: dict[str, Any]) -> tuple[CapacityFillHealth, tuple[str, ...]]:
    """The spec's fields of a scraped block, with every missing or mistyped one set to None and named."""
    values: dict[str, Any] = {}
    invalid = []
    for name in SPEC_FIELD_TYPES:
        value = block.get(name)
        if name in block and _valid(name, value):
            values[name] = float(value) if float in SPEC_FIELD_TYPES[name] and value is not None else value
        else:
            values[name] = None
            invalid.append(name)
    band, headroom, cancels = values["status_band"], values["open_order_headroom"], values["partial_fill_cancel_events_1d"]
    reason = block.get("status_reason")
    if not isinstance(reason, str):
        reason = status_reason(band, headroom, cancels) if None not in (band, headroom, cancels) else ""
    return CapacityFillHealth(**values, status_reason=reason), tuple(invalid)


def payload_pair(payload: dict[str, Any]) -> str | None:
    """The pair a status payload names (top-level `pair`, or inside the block), as our label."""
    for candidate in (payload.get("pair"), (payload.get("capacity_fill_health") or {}).get("pair")):
        label = canonical_label(candidate)
        if label:
            return label
    return None


class BotStatusScraper(BackgroundWorker):
    """A `PairSource` mirroring one bot's /api/status."""

    thread_name = "status-scraper"

    def __init__(
        self,
        url: str,
        metrics: ScrapeMetrics,
        pair: str | None = None,
        interval: float = defaults.SCRAPE_INTERVAL,
        timeout: float = defaults.SCRAPE_TIMEOUT,
        clock: Clock | None = None,
        stale_after: float | None = None,
    ) -> None:
        self.url = url
        self.display_url = redacted(url)  # for messages: never the password or token a URL may hold
        self.metrics = metrics
        self._pair_override = PairNames.offline(pair).label if pair else None
        self._learned_pair: str | None = None
        super().__init__(interval, join_timeout=timeout + 5)
        self.timeout = timeout
        self.stale_after = float(stale_after) if stale_after is not None else default_stale_after(interval, timeout)
        if not self.stale_after > 0:
            raise ValueError(f"stale_after must be > 0, got {stale_after!r}")
        self.clock = clock or SystemClock()
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._reading: PairReading | None = None
        self._last_outcome: str | None = None
        self._last_pair: str | None = None

    @property
    def pair(self) -> str:
        return self._pair_override or self._learned_pair or UNKNOWN_PAIR

    def reading(self) -> PairReading:
        with self._lock:
            reading = self._reading
        if reading is None:
            return PairReading(pair=self.pair, health=None, blind=True, problem=f"no successful scrape of {self.display_url} yet")
        if reading.blind or reading.last_update is None:
            return reading
        age = self.clock.now() - reading.last_update
        if age > self.stale_after:
            return dataclasses.replace(
                reading, health=None, blind=True, invalid_fields=(),
                problem=f"the last good scrape of {self.display_url} is {age:.0f} s old (stale after {self.stale_after:g} s)",
            )
        return reading

    def scrape_once(self) -> str:
        """Fetch and mirror the bot's block once; returns "ok" or the error reason. Never raises."""
        outcome, problem, payload = self._fetch()
        if outcome == "ok":
            learned = payload_pair(payload)
            if learned:
                self._learned_pair = learned
            elif self._pair_override is None:
                outcome, problem = "no_pair", "the payload names no pair; pass --pair"
        pair = self.pair
        if self._last_pair not in (None, pair):  # learned the real pair: drop the placeholder's series
            self._forget_series(self._last_pair)
        self._last_pair = pair
        if outcome == "ok":
            health, invalid = parse_block(payload["capacity_fill_health"])
            for field in invalid:
                self.metrics.field_errors.labels(pair=pair, field=field).inc()
            if invalid and self._last_outcome != "ok_invalid":
                log.warning("bot status at %s: missing or mistyped fields %s", self.display_url, ", ".join(invalid))
            now = self.clock.now()
            reading = PairReading(
                pair=pair, health=health, last_update=now, invalid_fields=invalid,
                problem=f"missing or mistyped in the bot's payload: {', '.join(invalid)}" if invalid else None,
            )
            self.metrics.up.labels(pair=pair).set(1)
            self.metrics.last_success.labels(pair=pair).set(now)
            self._last_outcome = "ok_invalid" if invalid else "ok"
        else:
            last_good = self._reading.last_update if self._reading is not None and self._reading.pair == pair else None
            reading = PairReading(pair=pair, health=None, blind=True, last_update=last_good,
                                  problem=f"scrape of {self.display_url} failed: {problem}")
            self.metrics.errors.labels(pair=pair, reason=outcome).inc()
            self.metrics.up.labels(pair=pair).set(0)
            if outcome != self._last_outcome:
                log.warning("bot status at %s: %s (%s); exporting up=0 and no values", self.display_url, problem, outcome)
            self._last_outcome = outcome
        with self._lock:
            self._reading = reading
        return outcome

    def _forget_series(self, pair: str) -> None:
        """Every series of a pair name this scraper no longer exports (the placeholder, or a renamed bot's pair)."""
        for gauge in (self.metrics.up, self.metrics.last_success):
            with suppress(KeyError):
                gauge.remove(pair)
        for reason in SCRAPE_ERRORS:
            with suppress(KeyError):
                self.metrics.errors.remove(pair, reason)
        for field in SPEC_FIELD_TYPES:
            with suppress(KeyError):
                self.metrics.field_errors.remove(pair, field)

    def _fetch(self) -> tuple[str, str, Any]:
        try:
            reply = self._session.get(self.url, timeout=self.timeout)
        except requests.exceptions.Timeout:
            return "timeout", f"no reply within {self.timeout:g} s", None
        except requests.exceptions.RequestException as exc:
            return "connection_error", type(exc).__name__, None
        if reply.status_code != 200:
            return "http_error", f"HTTP {reply.status_code}", None
        try:
            payload = reply.json()
        except ValueError:
            return "invalid_json", "the reply is not JSON", None
        if not isinstance(payload, dict) or not isinstance(payload.get("capacity_fill_health"), dict):
            return "no_capacity_block", "the payload has no capacity_fill_health object", None
        return "ok", "", payload

    def run_once(self) -> str:
        return self.scrape_once()

    def start(self) -> None:
        for reason in SCRAPE_ERRORS:
            self.metrics.errors.labels(pair=self.pair, reason=reason)
        super().start()
