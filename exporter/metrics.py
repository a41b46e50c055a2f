"""Prometheus side: instruments the hooks update, and a Collector for state computed at scrape time.

Sample exposition (one pair, abridged)::

    krakenbot_partial_fill_open_events_total{pair="XDGUSD"} 3.0
    krakenbot_fill_duration_seconds_bucket{le="60.0",pair="XDGUSD"} 12.0
    krakenbot_open_orders_current{pair="XDGUSD"} 42.0
    krakenbot_open_orders_headroom{pair="XDGUSD"} 126.0
    krakenbot_open_orders_utilization_ratio{pair="XDGUSD"} 0.25
    krakenbot_status_band{pair="XDGUSD"} 0.0
    krakenbot_status_band_state{band="stop",pair="XDGUSD"} 0.0
    krakenbot_kraken_data_available{pair="XDGUSD"} 1.0

Gauges whose value may be unknown (Kraken count, drift, orders per slot, data age, fill percentiles) are
absent rather than NaN, so PromQL never averages a missing value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .capacity import BAND_VALUE, BANDS, HINTS, SOURCES
from .reading import PairReading
from .telemetry import HOOK_ERROR_KINDS

PREFIX = "krakenbot"
# Grid orders fill in seconds when the price is on them and in days when it wanders off.
FILL_DURATION_BUCKETS = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600, 604800,
)


class PairEvents:
    """The `EventSink` of one pair: label-bound children of the shared instruments."""

    def __init__(self, metrics: EventMetrics, pair: str) -> None:
        self._open = metrics.partial_open_total.labels(pair=pair)
        self._cancel = metrics.partial_cancel_total.labels(pair=pair)
        self._fill = metrics.fill_duration.labels(pair=pair)
        self._errors = {kind: metrics.hook_errors_total.labels(pair=pair, kind=kind) for kind in HOOK_ERROR_KINDS}
        self._errors_metric = metrics.hook_errors_total
        self._pair = pair

    def partial_open(self) -> None:
        self._open.inc()

    def partial_cancel(self) -> None:
        self._cancel.inc()

    def fill_duration(self, seconds: float) -> None:
        self._fill.observe(seconds)

    def hook_error(self, kind: str) -> None:
        child = self._errors.get(kind) or self._errors_metric.labels(pair=self._pair, kind=kind)
        child.inc()


class EventMetrics:
    """Counters and the histogram that hooks update as events happen; one set per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.partial_open_total = Counter(
            f"{PREFIX}_partial_fill_open_events", "Open orders seen partially filled (once per txid).",
            ["pair"], registry=registry,
        )
        self.partial_cancel_total = Counter(
            f"{PREFIX}_partial_fill_cancel_events",
            "Canceled or expired orders with executed volume (PHANTOM_POSITION_CANARY).",
            ["pair"], registry=registry,
        )
        self.fill_duration = Histogram(
            f"{PREFIX}_fill_duration_seconds", "Time from placement to fill of closed orders.",
            ["pair"], buckets=FILL_DURATION_BUCKETS, registry=registry,
        )
        self.hook_errors_total = Counter(
            f"{PREFIX}_hook_errors", "Bad input rejected by the telemetry hooks, by kind.",
            ["pair", "kind"], registry=registry,
        )

    def for_pair(self, pair: str) -> PairEvents:
        return PairEvents(self, pair)

    def remove_pair(self, pair: str) -> None:
        """Drop a removed pair's series so they disappear from /metrics."""
        for metric in (self.partial_open_total, self.partial_cancel_total, self.fill_duration):
            with suppress(KeyError):
                metric.remove(pair)
        for kind in HOOK_ERROR_KINDS:
            with suppress(KeyError):
                self.hook_errors_total.remove(pair, kind)


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ("pair",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


class CapacityCollector(Collector):
    """Gauges derived from each pair's reading, computed when Prometheus scrapes."""

    def __init__(self, readings: Callable[[], Iterable[PairReading]]) -> None:
        self._readings = readings

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        g = {
            "current": _gauge("open_orders_current", "Best-available open order count (Kraken, else internal)."),
            "kraken": _gauge("open_orders_kraken", "Open orders of the pair as Kraken reports them; absent when unavailable."),
            "internal": _gauge("open_orders_internal", "Bot-tracked active + recovery orders."),
            "drift": _gauge("open_orders_drift", "Kraken minus internal open orders; absent when Kraken is unavailable."),
            "limit": _gauge("open_orders_limit", "Configured open-order limit per pair."),
            "ratio": _gauge("open_orders_safety_ratio", "Configured share of the limit treated as usable (0-1)."),
            "cap": _gauge("open_orders_safe_cap", "floor(limit * safety ratio), at least 1."),
            "headroom": _gauge("open_orders_headroom", "Safe cap minus current open orders."),
            "util": _gauge("open_orders_utilization_ratio", "Current open orders / safe cap (0-1, may exceed 1)."),
            "slots": _gauge("slots", "Slots the bot runs for the pair."),
            "per_slot": _gauge("orders_per_slot", "Open orders per slot; absent with no slots."),
            "remaining": _gauge("estimated_slots_remaining", "Advisory: slots that still fit under the safe cap."),
            "open_1d": _gauge("partial_fill_open_events_1d", "Partial-open events in the rolling 24h window."),
            "cancel_1d": _gauge("partial_fill_cancel_events_1d", "Partial-cancel events in the rolling 24h window."),
            "median_1d": _gauge("fill_duration_median_1d_seconds", "Median fill time over 24h; absent when none."),
            "p95_1d": _gauge("fill_duration_p95_1d_seconds", "Nearest-rank p95 fill time over 24h; absent when none."),
            "band": _gauge("status_band", "Band: 0 normal, 1 caution, 2 stop."),
            "band_state": _gauge("status_band_state", "1 for the current band, 0 for the others.", ("pair", "band")),
            "hint": _gauge("blocked_risk_hint", "1 when the risk hint is raised.", ("pair", "hint")),
            "source": _gauge("open_orders_source", "1 for the source of open_orders_current.", ("pair", "source")),
            "available": _gauge("kraken_data_available", "1 when a fresh Kraken open-order count is used."),
            "age": _gauge("kraken_data_age_seconds", "Age of the latest Kraken open-order snapshot; absent when none."),
            "last_update": _gauge("last_update_timestamp_seconds", "When the pair's data last changed (hook call or scrape)."),
        }
        for r in self._readings():
            p = r.pair
            if r.last_update is not None:
                g["last_update"].add_metric([p], r.last_update)
            if r.safety_ratio is not None:
                g["ratio"].add_metric([p], r.safety_ratio)
            if r.slot_count is not None:
                g["slots"].add_metric([p], r.slot_count)
            if r.kraken_data_age_seconds is not None:
                g["age"].add_metric([p], r.kraken_data_age_seconds)
            s = r.health
            if s is None:
                continue
            optional = {
                "kraken": s.open_orders_kraken,
                "drift": s.open_orders_drift,
                "per_slot": s.orders_per_slot_estimate,
                "median_1d": s.median_fill_seconds_1d,
                "p95_1d": s.p95_fill_seconds_1d,
            }
            for key, value in optional.items():
                if value is not None:
                    g[key].add_metric([p], value)
            g["current"].add_metric([p], s.open_orders_current)
            g["internal"].add_metric([p], s.open_orders_internal)
            g["limit"].add_metric([p], s.open_order_limit_configured)
            g["cap"].add_metric([p], s.open_orders_safe_cap)
            g["headroom"].add_metric([p], s.open_order_headroom)
            g["util"].add_metric([p], s.open_order_utilization_pct / 100.0)
            g["remaining"].add_metric([p], s.estimated_slots_remaining)
            g["open_1d"].add_metric([p], s.partial_fill_open_events_1d)
            g["cancel_1d"].add_metric([p], s.partial_fill_cancel_events_1d)
            if s.status_band in BAND_VALUE:
                g["band"].add_metric([p], BAND_VALUE[s.status_band])
            for band in BANDS:
                g["band_state"].add_metric([p, band], 1 if band == s.status_band else 0)
            for hint in HINTS:
                g["hint"].add_metric([p, hint], 1 if hint in s.blocked_risk_hint else 0)
            for source in SOURCES:
                g["source"].add_metric([p, source], 1 if source == s.open_orders_source else 0)
            g["available"].add_metric([p], 1 if s.open_orders_kraken is not None else 0)
        yield from g.values()
