"""The baseline built a day at a time equals the baseline built from the whole span: `PairDays` fed each day's samples
(led by the last sample before the day) gives what `pair_report` gives from every sample at once, and `Steps`
counted chunk by chunk gives the scrape interval of the whole series. Property-based (hypothesis): gaps, counter
resets, slot steps, days without samples, samples on a day's edge."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.core.baseline import DAY_SECONDS, FillTimes, PairDays, PairHistory, day_windows, pair_report
from exporter.core.samples import Sample, Steps, scrape_interval

END = 1_800_000_000.0
FIELDS = ("band", "kraken_available", "utilization", "headroom", "slots", "drift", "partial_open_total",
          "partial_cancel_total")


@st.composite
def series(draw: st.DrawFn, days: int) -> list[Sample]:
    """Samples over the days and the one before: a step of a few scrape intervals, gaps, values from a few."""
    start = END - (days + 1) * DAY_SECONDS
    step = draw(st.sampled_from([7200.0, 10800.0, 21600.0]))
    values = draw(st.sampled_from([[0.0, 1.0, 2.0], [0.25, 0.5, 0.875], [5.0, 6.0, 7.0, 1.0]]))
    times, t = [], start + draw(st.floats(0, step))
    while t <= END:
        if draw(st.integers(0, 9)):  # a tenth of the samples missing: gaps
            times.append(t)
        t += step * draw(st.sampled_from([1.0, 1.0, 1.0, 0.5, 3.0]))
    if draw(st.booleans()):  # a sample exactly on a day's edge (it belongs to the day it ends)
        times = sorted(set(times) | {END - DAY_SECONDS})
    return [(t, draw(st.sampled_from(values))) for t in times]


def by_day(history: PairHistory, end: float, days: int) -> PairDays:
    """`PairDays` fed as `rollout.reading` feeds it: each day's samples, every series led by its last one before."""
    fills = [FillTimes(100.0 + i, 900.0, "gauge") if i % 2 else FillTimes() for i in range(days)]
    built = PairDays(_interval(history.band), fills)
    for start, stop in day_windows(end, days):
        day = {}
        for name in FIELDS:
            samples = getattr(history, name)
            before = [s for s in samples if s[0] <= start][-1:]
            day[name] = before + [s for s in samples if start < s[0] <= stop]
        built.add(PairHistory(**day), start, stop)
    return built


def _interval(band: list[Sample]) -> float | None:
    counted = Steps()
    for start, stop in day_windows(END, 8):  # in chunks, as the reader counts them
        counted.add([t for t, _ in band if start < t <= stop])
    return counted.interval()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 7).flatmap(lambda days: st.tuples(st.just(days), st.fixed_dictionaries(
    {name: series(days) for name in FIELDS}))))
def test_a_baseline_built_a_day_at_a_time_is_the_baseline_of_the_whole_span(case):
    days, fields = case
    history = PairHistory(**fields)
    whole = pair_report(history, END, days, by_day(history, END, days).fills)
    built = by_day(history, END, days).report()
    mean_whole, mean_built = (r["summary"].pop("utilization_mean_ratio") for r in (whole, built))
    assert built == whole
    assert (mean_whole is None) == (mean_built is None)
    if mean_whole is not None:  # a sum of the days' sums, not one sum: the last bit may differ
        assert math.isclose(mean_built, mean_whole, rel_tol=1e-12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), max_size=60), st.lists(st.integers(0, 60), max_size=6))
def test_steps_counted_chunk_by_chunk_give_the_scrape_interval_of_the_whole_series(times, cuts):
    times = sorted(round(t, 3) for t in times)
    counted = Steps()
    edges = [0, *sorted(c for c in cuts if c <= len(times)), len(times)]
    for a, b in zip(edges, edges[1:], strict=False):
        counted.add(times[a:b])
    assert counted.interval() == scrape_interval([(t, 1.0) for t in times])


def test_steps_take_the_median_of_an_even_count_as_the_mean_of_the_middle_two():
    counted = Steps()
    counted.add([0.0, 10.0, 30.0])
    counted.add([60.0, 100.0])
    assert counted.interval() == (20.0 + 30.0) / 2
    assert Steps().interval() is None
