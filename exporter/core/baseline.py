"""The spec's 7-day baseline (T3): per pair and per day, from the exporter's raw series as Prometheus holds them.

Pure: the caller reads the samples (see `exporter/sources/prometheus_history.py`) and the day-end fill times,
and this module turns them into the report. Definitions, so that any two correct implementations agree:

- days end at `end` and are (start, end] windows of 86400 s; a step belongs to the day of its later sample;
- `median_fill_seconds`/`p95_fill_seconds`: the exporter's own 24h gauges at the day's end (their last value in the
  5 minutes before it), else `histogram_quantile` over the day's increase of the fill histogram (`fill_source`
  says which);
- `partial_open_events`/`partial_cancel_events`: the day's counter increase, a drop read as a restart from zero;
- `utilization_peak_ratio`/`utilization_mean_ratio`: max and plain mean of the day's samples;
- `headroom_min`, `drift_max_abs`: min headroom, max |drift| of the day's samples;
- `slots_start`/`slots_end`: first and last slot sample of the day; `slots_added`: sum of the rises;
- `seconds_in_band`, `seconds_kraken_fallback`: samples times the scrape interval seen in the band series;
- `coverage_ratio`: band samples times that interval over the day's length, at most 1;
- `order_rate_peak`: the order rate counter's 24h peak gauge at the day's end (its last sample in the day: the
  peak of that day), `order_rate_threshold` its threshold then, `order_rate_limited`: the day's increase of the
  rate-limit rejections (issue 18).

A field whose series has no sample in the day is None (null), never 0; a day without band samples has
`coverage_ratio` 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .capacity import BAND_VALUE, BANDS
from .samples import Sample, as_number, count_where, counter_increase, in_window, positive_steps, scrape_interval
from .windows import DAY_SECONDS

FILL_GAUGE = "gauge"
FILL_HISTOGRAM = "histogram"


@dataclass(frozen=True)
class PairHistory:
    """Raw samples of one pair's series, in time order, starting at least one day before the first day."""

    band: Sequence[Sample] = ()
    kraken_available: Sequence[Sample] = ()
    utilization: Sequence[Sample] = ()
    headroom: Sequence[Sample] = ()
    slots: Sequence[Sample] = ()
    drift: Sequence[Sample] = ()
    partial_open_total: Sequence[Sample] = ()
    partial_cancel_total: Sequence[Sample] = ()
    rate_peak: Sequence[Sample] = ()
    rate_threshold: Sequence[Sample] = ()
    rate_limited_total: Sequence[Sample] = ()


@dataclass(frozen=True)
class FillTimes:
    """A day's median and p95 fill time and where they came from (`gauge`, `histogram`, or None when neither)."""

    median: float | None = None
    p95: float | None = None
    source: str | None = None


def choose_fill(gauge: tuple[float | None, float | None], histogram: tuple[float | None, float | None]) -> FillTimes:
    """The gauges when the exporter had them at the day's end, else the histogram's quantiles, else nothing."""
    if gauge[0] is not None or gauge[1] is not None:
        return FillTimes(gauge[0], gauge[1], FILL_GAUGE)
    if histogram[0] is not None or histogram[1] is not None:
        return FillTimes(histogram[0], histogram[1], FILL_HISTOGRAM)
    return FillTimes()


def day_windows(end: float, days: int) -> list[tuple[float, float]]:
    """`days` consecutive (start, end] windows of a day each, the last ending at `end`, oldest first."""
    return [(end - (days - i) * DAY_SECONDS, end - (days - i - 1) * DAY_SECONDS) for i in range(days)]


def day_report(history: PairHistory, start: float, end: float, interval: float | None, fill: FillTimes) -> dict[str, Any]:
    """One day's fields (see the module docstring)."""
    band = in_window(history.band, start, end)
    utilization = [v for _, v in in_window(history.utilization, start, end)]
    headroom = [v for _, v in in_window(history.headroom, start, end)]
    slots = in_window(history.slots, start, end)
    drift = [abs(v) for _, v in in_window(history.drift, start, end)]
    available = in_window(history.kraken_available, start, end)
    opens = counter_increase(history.partial_open_total, start, end)
    cancels = counter_increase(history.partial_cancel_total, start, end)
    added = positive_steps(history.slots, start, end)
    peak = in_window(history.rate_peak, start, end)
    threshold = in_window(history.rate_threshold, start, end)
    limited = counter_increase(history.rate_limited_total, start, end)
    return {
        "start": as_number(start),
        "end": as_number(end),
        "coverage_ratio": round(min(1.0, len(band) * interval / (end - start)), 4) if band and interval else 0,
        "fill_source": fill.source,
        "median_fill_seconds": fill.median,
        "p95_fill_seconds": fill.p95,
        "partial_open_events": None if opens is None else opens[0],
        "partial_cancel_events": None if cancels is None else cancels[0],
        "utilization_peak_ratio": max(utilization) if utilization else None,
        "utilization_mean_ratio": statistics.fmean(utilization) if utilization else None,
        "headroom_min": as_number(min(headroom)) if headroom else None,
        "slots_start": as_number(slots[0][1]) if slots else None,
        "slots_end": as_number(slots[-1][1]) if slots else None,
        "slots_added": None if added is None else added[0],
        "seconds_in_band": (
            {b: count_where(band, BAND_VALUE[b]) * interval for b in BANDS} if band and interval else None
        ),
        "seconds_kraken_fallback": count_where(available, 0) * interval if available and interval else None,
        "drift_max_abs": as_number(max(drift)) if drift else None,
        "order_rate_peak": as_number(peak[-1][1]) if peak else None,
        "order_rate_threshold": as_number(threshold[-1][1]) if threshold else None,
        "order_rate_limited": None if limited is None else limited[0],
    }


def pair_report(history: PairHistory, end: float, days: int, fills: Sequence[FillTimes]) -> dict[str, Any]:
    """{"scrape_interval_seconds", "days": [...], "summary": {...}} for one pair; `fills` has one entry per day."""
    if len(fills) != days:
        raise ValueError(f"{len(fills)} fill entries for {days} days")
    interval = scrape_interval(history.band)
    windows = day_windows(end, days)
    rows = [day_report(history, s, e, interval, fill) for (s, e), fill in zip(windows, fills, strict=True)]
    span_utilization = [v for _, v in in_window(history.utilization, windows[0][0], end)]
    mean = statistics.fmean(span_utilization) if span_utilization else None
    return {"scrape_interval_seconds": interval, "days": rows, "summary": summarize(rows, mean)}


class PairDays:
    """`pair_report` built a day at a time, oldest first, so that the caller never holds more than a day of raw
    samples: the scrape interval of the whole span is known before (`samples.Steps`), and each `add` gets one day's
    history, every series led by its last sample before the day (what counters and slot steps look back at)."""

    def __init__(self, interval: float | None, fills: Sequence[FillTimes]) -> None:
        self.interval = interval
        self.fills = fills
        self.rows: list[dict[str, Any]] = []
        self._utilization_sums: list[float] = []
        self._utilization_count = 0

    def add(self, history: PairHistory, start: float, end: float) -> None:
        """The next day, (start, end]."""
        self.rows.append(day_report(history, start, end, self.interval, self.fills[len(self.rows)]))
        values = [v for _, v in in_window(history.utilization, start, end)]
        self._utilization_sums.append(math.fsum(values))
        self._utilization_count += len(values)

    def report(self) -> dict[str, Any]:
        """What `pair_report` gives for the days added (the mean utilization to the last bit or so)."""
        if len(self.rows) != len(self.fills):
            raise ValueError(f"{len(self.rows)} days added of {len(self.fills)}")
        count = self._utilization_count
        mean = math.fsum(self._utilization_sums) / count if count else None
        return {"scrape_interval_seconds": self.interval, "days": self.rows, "summary": summarize(self.rows, mean)}


def summarize(rows: Sequence[dict[str, Any]], utilization_mean: float | None) -> dict[str, Any]:
    """The whole span: sums of counts and durations, extremes of extremes, medians of the daily fill times.

    `utilization_mean_ratio` is the plain mean of every sample of the span (given: the rows do not hold it);
    `coverage_ratio` the mean of the days'.
    """
    def present(key: str) -> list[Any]:
        return [r[key] for r in rows if r[key] is not None]

    def total(key: str) -> Any:
        values = present(key)
        return sum(values) if values else None

    bands = present("seconds_in_band")
    slots_start, slots_end = present("slots_start"), present("slots_end")
    medians, p95s = present("median_fill_seconds"), present("p95_fill_seconds")
    return {
        "days_with_data": sum(1 for r in rows if r["coverage_ratio"]),
        "coverage_ratio": round(statistics.fmean(r["coverage_ratio"] for r in rows), 4) if rows else 0,
        "median_fill_seconds": statistics.median(medians) if medians else None,
        "p95_fill_seconds": statistics.median(p95s) if p95s else None,
        "partial_open_events": total("partial_open_events"),
        "partial_cancel_events": total("partial_cancel_events"),
        "utilization_peak_ratio": max(present("utilization_peak_ratio"), default=None),
        "utilization_mean_ratio": utilization_mean,
        "headroom_min": min(present("headroom_min"), default=None),
        "slots_start": slots_start[0] if slots_start else None,
        "slots_end": slots_end[-1] if slots_end else None,
        "slots_added": total("slots_added"),
        "seconds_in_band": {b: sum(d[b] for d in bands) for b in BANDS} if bands else None,
        "seconds_kraken_fallback": total("seconds_kraken_fallback"),
        "drift_max_abs": max(present("drift_max_abs"), default=None),
        "order_rate_peak": max(present("order_rate_peak"), default=None),
        "order_rate_threshold": (present("order_rate_threshold") or [None])[-1],
        "order_rate_limited": total("order_rate_limited"),
    }
