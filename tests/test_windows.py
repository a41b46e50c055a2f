import math
import random
import statistics

import pytest

from exporter.core.windows import (
    DAY_SECONDS,
    RollingEventWindow,
    RollingValueWindow,
    median,
    percentile_nearest_rank,
)


def naive_p95(values):
    data = sorted(values)
    return data[math.ceil(0.95 * len(data)) - 1]


def test_events_older_than_a_day_drop_out_of_the_count_and_exactly_a_day_old_stay():
    w = RollingEventWindow()
    w.append(1000.0)
    w.append(2000.0)
    assert w.count(1000.0 + DAY_SECONDS) == 2
    assert w.count(1000.0 + DAY_SECONDS + 1) == 1
    assert w.count(2000.0 + DAY_SECONDS + 1) == 0


def test_expiry_removes_at_most_its_budget_per_call_and_the_rest_later():
    w = RollingValueWindow()
    for i in range(10):
        w.append(float(i), float(i))
    assert w.expire(DAY_SECONDS + 100, budget=4) == 4
    assert len(w) == 6
    assert w.expire(0.0) == 6  # the mark never goes back: the rest still expires
    assert len(w) == 0 and w.median() is None


@pytest.mark.parametrize("n", [1, 2, 3, 19, 20, 21, 100, 101])
def test_percentiles_match_a_naive_reference(n):
    rng = random.Random(n)
    values = [rng.uniform(0, 10_000) for _ in range(n)]
    assert median(values) == statistics.median(values)
    assert percentile_nearest_rank(values, 95) == naive_p95(values)


def test_p95_is_nearest_rank_not_interpolated():
    values = list(range(1, 21))  # ceil(0.95*20)=19 -> 19th smallest
    assert percentile_nearest_rank(values, 95) == 19
    assert median(values) == 10.5


def test_empty_windows_have_no_percentiles():
    w = RollingValueWindow()
    assert median(w.values(0.0)) is None
    assert percentile_nearest_rank(w.values(0.0), 95) is None
    assert median([]) is None


def test_value_window_percentiles_use_only_the_last_day():
    w = RollingValueWindow()
    w.append(0.0, 1_000_000.0)
    for i in range(10):
        w.append(DAY_SECONDS / 2 + i, float(i))
    now = DAY_SECONDS + 1
    assert w.values(now) == [float(i) for i in range(10)]
    assert percentile_nearest_rank(w.values(now), 95) == 9.0
    assert median(w.values(now)) == 4.5


def test_the_cap_pushes_out_the_oldest_and_says_which():
    w = RollingEventWindow(max_items=2)
    assert w.append(0.0) is None
    assert w.append(10.0) is None
    assert w.append(20.0) == 0.0
    assert w.count(20.0) == 2


def test_a_flood_keeps_the_newest_events():
    w = RollingEventWindow(max_items=100)
    pushed_out = [w.append(float(i)) for i in range(150)]
    assert w.count(150.0) == 100
    assert pushed_out[100:] == [float(i) for i in range(50)]


def test_long_runs_of_expiry_compact_the_arrays_and_keep_every_answer():
    values, events = RollingValueWindow(max_items=15_000), RollingEventWindow(max_items=15_000)
    naive, mark = [], float("-inf")
    for i in range(30_000):
        values.append(float(i), float((i * 7919) % 1000))
        events.append(float(i))
        naive = (naive + [(float(i), float((i * 7919) % 1000))])[-15_000:]
        if i % 997 == 0:
            horizon = i - 9_000.0
            mark = max(mark, horizon)
            values.expire(horizon, budget=3_000)
            events.expire(horizon, budget=3_000)
            values.index(budget=5_000)
    now = 29_999.0 + DAY_SECONDS - 10_000
    live = [v for s, v in naive if s >= max(mark, now - DAY_SECONDS)]
    assert values.values(now) == live and events.count(now) == len(live)
    assert values.median() == statistics.median(live)
    assert values.percentile(95) == naive_p95(live)
    assert values._head < len(values._stamps) or values._head == 0
