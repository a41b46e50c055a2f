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
    krakenbot_pair_blind{pair="XDGUSD"} 0.0

Gauges whose value may be unknown (Kraken count, drift, orders per slot, data age, fill percentiles) are
absent rather than NaN, so PromQL never averages a missing value. `krakenbot_pair_blind` and
`krakenbot_kraken_data_available` are present for every configured pair, even when its block is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ..core.capacity import BAND_VALUE, BANDS, HINTS, SOURCES, CapacityFillHealth
from ..core.counters import FILL_DURATION_BUCKETS, EventCounts
from ..core.inputs import HOOK_ERROR_KINDS
from ..core.naming import PREFIX  # noqa: E402  (re-exported for the collector)
from ..core.order_rate import RateReading
from ..core.reading import PairReading

# Gauges of one value per pair: (name, help, value from the block). A None value is left out, never NaN.
_PAIR_GAUGES: tuple[tuple[str, str, Callable[[CapacityFillHealth], float | None]], ...] = (
    ("open_orders_current", "Best-available open order count (Kraken, else internal).", lambda s: s.open_orders_current),
    ("open_orders_kraken", "Open orders of the pair as Kraken reports them; absent when unavailable.",
     lambda s: s.open_orders_kraken),
    ("open_orders_internal", "Bot-tracked active + recovery orders.", lambda s: s.open_orders_internal),
    ("open_orders_drift", "Kraken minus internal open orders; absent when Kraken is unavailable.",
     lambda s: s.open_orders_drift),
    ("open_orders_limit", "Configured open-order limit per pair.", lambda s: s.open_order_limit_configured),
    ("open_orders_safe_cap", "floor(limit * safety ratio), at least 1.", lambda s: s.open_orders_safe_cap),
    ("open_orders_headroom", "Safe cap minus current open orders.", lambda s: s.open_order_headroom),
    ("open_orders_utilization_ratio", "Current open orders / safe cap (0-1, may exceed 1).",
     lambda s: None if s.open_order_utilization_pct is None else s.open_order_utilization_pct / 100.0),
    ("orders_per_slot", "Open orders per slot; absent with no slots.", lambda s: s.orders_per_slot_estimate),
    ("estimated_slots_remaining", "Advisory: slots that still fit under the safe cap.", lambda s: s.estimated_slots_remaining),
    ("partial_fill_open_events_1d", "Partial-open events in the rolling 24h window.", lambda s: s.partial_fill_open_events_1d),
    ("partial_fill_cancel_events_1d", "Partial-cancel events in the rolling 24h window.",
     lambda s: s.partial_fill_cancel_events_1d),
    ("fill_duration_median_1d_seconds", "Median fill time over 24h; absent when none.", lambda s: s.median_fill_seconds_1d),
    ("fill_duration_p95_1d_seconds", "Nearest-rank p95 fill time over 24h; absent when none.", lambda s: s.p95_fill_seconds_1d),
    ("status_band", "Band: 0 normal, 1 caution, 2 stop.", lambda s: None if s.status_band is None else BAND_VALUE[s.status_band]),
)
# Gauges about the pair's data rather than the block: (name, help, value from the reading).
# The first two are present for every configured pair, always: blind is a state, never silence.
_READING_GAUGES: tuple[tuple[str, str, Callable[[PairReading], float | None]], ...] = (
    ("pair_blind", "1 when the exporter has no usable data for the pair (no fresh Kraken count in serve, "
     "bot unreachable in scrape, no hook call within the stale limit embedded).",
     lambda r: int(r.blind)),
    ("kraken_data_available", "1 when a fresh Kraken open-order count is used, else 0 (also when there is no data).",
     lambda r: int(r.kraken_data_available)),
    ("open_orders_safety_ratio", "Configured share of the limit treated as usable (0-1).", lambda r: r.safety_ratio),
    ("slots", "Slots the bot runs for the pair.", lambda r: r.slot_count),
    ("kraken_data_age_seconds", "Age of the latest Kraken open-order snapshot; absent when none.",
     lambda r: r.kraken_data_age_seconds),
    ("last_update_timestamp_seconds", "When the pair's data last changed (hook call or scrape).", lambda r: r.last_update),
    ("forecast_seconds_to_stop_band", "Seconds until the headroom reaches the stop edge at its 6h least-squares "
     "trend (as predict_linear); 0 once it is in the stop band; absent when it is above the band and not falling, "
     "and for a blind pair.", lambda r: r.forecast_seconds_to_stop),
)


# Kraken's order rate counter (the second capacity), for a source that knows it: (name, help, value).
_RATE_GAUGES: tuple[tuple[str, str, Callable[[RateReading], float | None]], ...] = (
    ("order_rate_level", "Kraken's per-pair order rate counter now: ours, estimated from the account's order "
     "events with Kraken's arithmetic, or Kraken's own value when it reports one.", lambda r: r.counter),
    ("order_rate_threshold", "The counter's threshold for the tier: over it, orders fail with "
     "EOrder:Rate limit exceeded.", lambda r: r.threshold),
    ("order_rate_threshold_from_kraken", "1 when the threshold in force is the account's own (maxratecount in "
     "Kraken's executions subscribe ack), 0 when it is the configured tier's.",
     lambda r: 1.0 if r.threshold_source == "kraken" else 0.0),
    ("order_rate_utilization_ratio", "The counter / its threshold (0-1).", lambda r: r.utilization),
    ("order_rate_peak_1d", "The counter's highest value in the last 24h.", lambda r: r.peak_1d),
    ("order_rate_estimate_error", "Kraken's last reported counter minus our estimate at that moment; absent "
     "until Kraken reports one.", lambda r: r.estimate_error),
)


def _one(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else (value,)


# State sets: one series per possible value, 1 for the current ones; left out when the state is unknown (None).
_STATE_SETS: tuple[tuple[str, str, str, tuple[str, ...], Callable[[CapacityFillHealth], Iterable[str] | None]], ...] = (
    ("status_band_state", "1 for the current band, 0 for the others.", "band", BANDS, lambda s: _one(s.status_band)),
    ("blocked_risk_hint", "1 when the risk hint is raised.", "hint", HINTS, lambda s: s.blocked_risk_hint),
    ("open_orders_source", "1 for the source of open_orders_current.", "source", SOURCES,
     lambda s: _one(s.open_orders_source)),
)


_LE = tuple(floatToGoString(b) for b in FILL_DURATION_BUCKETS) + ("+Inf",)


class CapacityCollector(Collector):
    """Gauges derived from each pair's reading, and the event counters of hook-fed pairs, computed at scrape time."""

    def __init__(self, readings: Callable[[], Iterable[PairReading]]) -> None:
        self._readings = readings

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        def family(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["pair", *labels])

        pair_gauges = [(family(n, d), get) for n, d, get in _PAIR_GAUGES]
        reading_gauges = [(family(n, d), get) for n, d, get in _READING_GAUGES]
        state_sets = [(family(n, d, label), values, get) for n, d, label, values, get in _STATE_SETS]
        events = _EventFamilies()
        rate_gauges = [(family(n, d), get) for n, d, get in _RATE_GAUGES]
        limited = CounterMetricFamily(f"{PREFIX}_order_rate_limited", "Orders refused with EOrder:Rate limit "
                                      "exceeded (the stream's reason, or observe_order_rejected).", labels=["pair"])
        for reading in self._readings():
            pair = reading.pair
            rate = reading.order_rate
            if rate is not None:
                for metric, of_rate in rate_gauges:
                    _add(metric, [pair], of_rate(rate))
                limited.add_metric([pair], rate.limited_total)
            for metric, of_reading in reading_gauges:
                _add(metric, [pair], of_reading(reading))
            if reading.counts is not None:
                events.add(pair, reading.counts)
            health = reading.health
            if health is None:
                continue
            for metric, get in pair_gauges:
                _add(metric, [pair], get(health))
            for metric, values, states in state_sets:
                current = states(health)
                if current is not None:
                    for value in values:
                        metric.add_metric([pair, value], 1 if value in current else 0)
        yield from events.families()
        yield from (m for m, _ in rate_gauges)
        yield limited
        yield from (m for m, _ in pair_gauges)
        yield from (m for m, _ in reading_gauges)
        yield from (m for m, _, _ in state_sets)


class _EventFamilies:
    """The counters and the histogram the hooks feed, as families (with `_created`, as prometheus-client does)."""

    def __init__(self) -> None:
        self.opens = CounterMetricFamily(
            f"{PREFIX}_partial_fill_open_events", "Open orders seen partially filled (once per txid).", labels=["pair"])
        self.cancels = CounterMetricFamily(
            f"{PREFIX}_partial_fill_cancel_events",
            "Canceled or expired orders with executed volume (PHANTOM_POSITION_CANARY).", labels=["pair"])
        self.fills = HistogramMetricFamily(
            f"{PREFIX}_fill_duration_seconds", "Time from placement to fill of closed orders.", labels=["pair"])
        self.errors = CounterMetricFamily(
            f"{PREFIX}_hook_errors", "Bad input rejected by the telemetry hooks, by kind.", labels=["pair", "kind"])

    def add(self, pair: str, counts: EventCounts) -> None:
        created = counts.created
        self.opens.add_metric([pair], counts.partial_open_total, created=created)
        self.cancels.add_metric([pair], counts.partial_cancel_total, created=created)
        cumulative, buckets = 0, []
        for le, n in zip(_LE, counts.fill_bucket_counts or (0,) * len(_LE), strict=True):
            cumulative += n
            buckets.append((le, cumulative))
        self.fills.add_metric([pair], buckets, counts.fill_sum)
        if created is not None:
            self.fills.samples.append(Sample(f"{PREFIX}_fill_duration_seconds_created", {"pair": pair}, created))
        errors = counts.hook_errors
        for kind in HOOK_ERROR_KINDS:
            self.errors.add_metric([pair, kind], errors.get(kind, 0), created=created)

    def families(self) -> tuple[Metric, ...]:
        return self.opens, self.cancels, self.fills, self.errors


def _add(metric: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        metric.add_metric(labels, value)
