"""The store client's pieces that need no server: raw samples held in arrays, read as (t, value) tuples, and a
span cut into chunks."""

from __future__ import annotations

import bisect
from operator import itemgetter

import pytest

from exporter.core.samples import counter_increase, in_window, scrape_interval
from exporter.sources.prometheus_history import Samples, _chunks

POINTS = [[100.0, "1"], [160.0, "2"], [220.0, "0"], [280.0, "5"], [340.0, "6"]]
TUPLES = [(100.0, 1.0), (160.0, 2.0), (220.0, 0.0), (280.0, 5.0), (340.0, 6.0)]


def test_samples_read_like_the_list_of_tuples_they_replace():
    samples = Samples.from_json(POINTS)
    assert list(samples) == TUPLES and samples == TUPLES and len(samples) == 5
    assert samples[1] == (160.0, 2.0) and samples[-1] == (340.0, 6.0) and samples[1:3] == TUPLES[1:3]
    assert bisect.bisect_right(samples, 220.0, key=itemgetter(0)) == 3


def test_the_core_arithmetic_gives_the_same_on_samples_as_on_tuples():
    samples = Samples.from_json(POINTS)
    assert in_window(samples, 100, 280) == in_window(TUPLES, 100, 280) == TUPLES[1:4]
    assert counter_increase(samples, 100, 340) == counter_increase(TUPLES, 100, 340) == (7, 340.0)
    assert scrape_interval(samples) == scrape_interval(TUPLES) == 60


def test_from_json_keeps_the_window_open_at_the_start_and_closed_at_the_end():
    assert list(Samples.from_json(POINTS, 160, 280)) == TUPLES[2:4]
    both = Samples.from_json(POINTS, 0, 160)
    both.extend(Samples.from_json(POINTS, 160, 400))
    assert both == TUPLES


def test_a_span_is_cut_into_chunks_that_meet_and_cover_it():
    assert _chunks(0, 250, 100) == [(0, 100), (100, 200), (200, 250)]
    assert _chunks(0, 300, 100) == [(0, 100), (100, 200), (200, 300)]
    assert _chunks(0, 50, 100) == [(0, 50)] and _chunks(0, 500, None) == [(0, 500)]


def test_from_json_leaves_out_values_that_are_not_finite_numbers():
    """A staleness marker comes back from VictoriaMetrics as "NaN"; none of these is a value to count or print."""
    points = [[100, "1"], [160, "NaN"], [220, "+Inf"], [280, "-Inf"], ["340", "2"]]
    assert list(Samples.from_json(points)) == [(100.0, 1.0), (340.0, 2.0)]


def test_from_json_refuses_points_that_are_not_time_value_pairs():
    for points in ([[100, "1", "x"]], [["noon", "1"]], [[100, None]], "not a list", [100]):
        with pytest.raises(ValueError, match="not a list of"):
            Samples.from_json(points)


def test_from_json_puts_samples_in_time_order_before_cutting_the_window():
    points = [[340.0, "6"], [100.0, "1"], [220.0, "0"], [160.0, "2"], [280.0, "5"]]
    assert list(Samples.from_json(points, 100, 280)) == TUPLES[1:4]
