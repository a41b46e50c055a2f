"""The polled source: our own `OpenOrders` poller, for standalone use with a separate read-only key.

One background thread calls `OpenOrders` every `interval` seconds (one call serves every pair) and feeds the
reply to each pair's telemetry, exactly as an embedding bot feeds the reply it fetched itself. A scrape or a
status read never waits on Kraken. Failures are classified and counted; any failure makes the pairs fall back to
their internal count at once, and a rate limit backs the next poll off exponentially (capped).

Beside Kraken's `executions` stream (`stream=`), the poller is the cross-check: while the stream is live it calls
`OpenOrders` only every `CROSS_CHECK_FACTOR` intervals, hands the reply to the stream (which compares the counts and
learns when orders open at connect were placed) and leaves the pairs' counts to the stream; the moment the stream
is down it polls every interval again and feeds the pairs as without a stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..core import defaults
from ..core.naming import PREFIX
from ..core.pairs import PairNames, names_from_asset_pairs
from ..core.telemetry import CapacityTelemetry
from .kraken_api import RATE_LIMIT_RESULTS, RESULTS, KrakenError, ReadOnlyKraken
from .worker import BackgroundWorker

log = logging.getLogger("kraken_capacity_exporter.kraken")

DEFAULT_POLL_INTERVAL = defaults.KRAKEN_POLL_INTERVAL
MAX_BACKOFF = 300.0
_HINTS = {
    "permission_denied": "the API key lacks the 'Query Open Orders & Trades' permission (Kraken > Settings > API)",
    "invalid_key": "the API key or secret is wrong, or the key was deleted (Kraken > Settings > API)",
    "invalid_nonce": "another client uses this key with a higher nonce; give the exporter its own key",
}
CROSS_CHECK_FACTOR = 4  # while the stream is live, OpenOrders once every 4 intervals (60 s by default)
FALLBACK_INTERNAL = "using the internal count"
FALLBACK_BLIND = "the pairs are blind until Kraken answers (standalone mode has no internal count)"


class KrakenSourceMetrics:
    """Health of the one Kraken connection of the process (no pair label: one call serves all pairs)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(f"{PREFIX}_kraken_requests", "Kraken API calls by endpoint and result.",
                                ["endpoint", "result"], registry=registry)
        self.duration = Histogram(f"{PREFIX}_kraken_request_duration_seconds", "Kraken API call latency.",
                                  ["endpoint"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry)
        self.up = Gauge(f"{PREFIX}_kraken_up", "1 when the last OpenOrders call succeeded.", registry=registry)
        self.last_success = Gauge(f"{PREFIX}_kraken_last_success_timestamp_seconds",
                                  "Unix time of the last successful OpenOrders call.", registry=registry)
        self.backoff = Gauge(f"{PREFIX}_kraken_backoff_seconds", "Extra delay before the next poll after rate limiting.",
                             registry=registry)
        for result in RESULTS:
            self.requests.labels(endpoint="OpenOrders", result=result)


class CrossCheck(Protocol):
    """What the poller needs of a stream it cross-checks (`KrakenStream`)."""

    @property
    def live(self) -> bool: ...

    def cross_check(self, open_orders: Mapping[str, Any]) -> None: ...


def resolve_pairs(client: ReadOnlyKraken, configured: Iterable[str]) -> dict[str, PairNames]:
    """Ask the public AssetPairs endpoint once for every spelling of each configured pair.

    Raises PairError naming a pair Kraken does not know, and KrakenError when Kraken cannot be asked.
    """
    return names_from_asset_pairs(client.public("AssetPairs"), configured)


class KrakenOpenOrdersPoller(BackgroundWorker):
    thread_name = "kraken-open-orders"

    def __init__(
        self,
        client: ReadOnlyKraken,
        telemetries: Iterable[CapacityTelemetry],
        metrics: KrakenSourceMetrics,
        interval: float = DEFAULT_POLL_INTERVAL,
        max_backoff: float = MAX_BACKOFF,
        fallback: str = FALLBACK_INTERNAL,
        stream: CrossCheck | None = None,
    ) -> None:
        self.client = client
        self.telemetries = list(telemetries)
        self.metrics = metrics
        super().__init__(interval, join_timeout=client.timeout + 5)
        self.max_backoff = float(max_backoff)
        self.fallback = fallback  # what a failure means for the pairs, for the log line
        self.stream = stream
        self.backoff = 0.0
        self.last_result: str | None = None
        self._last_call: float | None = None

    def poll_once(self) -> str:
        """One OpenOrders call, fed to every pair (or, while the stream is live, to its cross-check); returns the
        result label. Never raises."""
        started = self._last_call = time.monotonic()
        try:
            result = self.client.private("OpenOrders")
            open_orders = result.get("open")
            if not isinstance(open_orders, dict):
                raise KrakenError("malformed_reply", "OpenOrders result has no 'open' object")
        except KrakenError as exc:
            outcome, message = exc.result, str(exc)
        except Exception as exc:  # never let the poller thread die
            outcome, message = "malformed_reply", f"{type(exc).__name__}"
        else:
            outcome, message = "ok", ""
        finally:
            self.metrics.duration.labels(endpoint="OpenOrders").observe(time.monotonic() - started)
        stream = self.stream
        if outcome == "ok" and stream is not None:
            stream.cross_check(open_orders)
        streaming = stream is not None and stream.live
        if outcome == "ok":
            if not streaming:
                for telemetry in self.telemetries:
                    telemetry.observe_kraken_open_orders(open_orders)
            self.metrics.up.set(1)
            self.metrics.last_success.set(time.time())
            self.backoff = 0.0
            if self.last_result not in (None, "ok"):
                log.info("Kraken OpenOrders answers again; using Kraken's counts")
        else:
            if not streaming:
                for telemetry in self.telemetries:
                    telemetry.observe_kraken_unavailable()
            self.metrics.up.set(0)
            if outcome in RATE_LIMIT_RESULTS:
                self.backoff = min(self.max_backoff, max(self.interval, self.backoff * 2))
            if outcome != self.last_result:
                hint = f": {_HINTS[outcome]}" if outcome in _HINTS else ""
                log.warning("Kraken OpenOrders failed (%s: %s)%s; %s", outcome, message, hint,
                            "the stream keeps the counts" if streaming else self.fallback)
        self.metrics.backoff.set(self.backoff)
        # counted last, so that whoever sees the count also sees the pairs' new state
        self.metrics.requests.labels(endpoint="OpenOrders", result=outcome).inc()
        self.last_result = outcome
        return outcome

    def run_once(self) -> str:
        stream, last = self.stream, self._last_call
        if stream is not None and stream.live and last is not None \
                and time.monotonic() - last < CROSS_CHECK_FACTOR * self.interval - self.interval / 2:
            return "skipped"  # the stream is live: OpenOrders only as its cross-check
        return self.poll_once()

    def next_delay(self) -> float:
        return self.interval + self.backoff
