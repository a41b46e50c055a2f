"""Time-to-stop forecast: the least-squares trend of the headroom, the same estimate as PromQL `predict_linear`.

`predict_linear(v[6h], s)` fits a line through the range's raw samples by ordinary least squares, with time
measured from the evaluation time, and returns the line's value `s` seconds later. `fit_trend` computes that
line from (time, headroom) points; `seconds_to_stop` solves it for the moment the headroom reaches
`STOP_HEADROOM`. The forecast is absent (None) when the headroom is not falling or there are fewer than two
points, so a flat or rising grid never shows a countdown. Once the headroom is in the stop band (below
`STOP_HEADROOM`) the forecast is 0 whatever the trend (`HeadroomHistory.forecast`): the stop band is here now.

`HeadroomHistory` is the exporter's own bounded, per-minute record of one pair's headroom, clock-injected:
the card and /api/status (`forecast_hours_to_stop`) read it, and agree with the recording rule over the same
samples.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .thresholds import FORECAST_TREND_SECONDS, STOP_HEADROOM

HISTORY_RESOLUTION_SECONDS = 60.0  # one point per minute


@dataclass(frozen=True)
class Trend:
    """A fitted line: `value_at_eval` is the line's value at the evaluation time, `slope` per second."""

    at: float
    value_at_eval: float
    slope: float

    def predict(self, seconds_ahead: float) -> float:
        """The line's value `seconds_ahead` after the evaluation time: PromQL's `predict_linear(v, seconds_ahead)`."""
        return self.value_at_eval + self.slope * seconds_ahead


def fit_trend(points: Iterable[tuple[float, float]], at: float) -> Trend | None:
    """Ordinary least squares over (time, value) points, time measured from `at`; None under two distinct times."""
    pts = [(t - at, v) for t, v in points if math.isfinite(t) and math.isfinite(v)]
    n = len(pts)
    if n < 2:
        return None
    mean_x = sum(x for x, _ in pts) / n
    mean_y = sum(y for _, y in pts) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in pts)
    slope = sxy / sxx
    return Trend(at=at, value_at_eval=mean_y - slope * mean_x, slope=slope)


def seconds_to_stop(points: Iterable[tuple[float, float]], at: float, stop_headroom: float = STOP_HEADROOM) -> float | None:
    """Seconds after `at` until the trend reaches `stop_headroom`: 0 when it is already there; None when not falling."""
    trend = fit_trend(points, at)
    if trend is None or not trend.slope < 0:
        return None
    return max(0.0, (stop_headroom - trend.value_at_eval) / trend.slope)


def hours_to_stop(points: Iterable[tuple[float, float]], at: float, stop_headroom: float = STOP_HEADROOM) -> float | None:
    seconds = seconds_to_stop(points, at, stop_headroom)
    return None if seconds is None else seconds / 3600.0


class HeadroomHistory:
    """The last `trend_seconds` of one pair's headroom, at most one point per minute (the minute's latest value).

    Memory is bounded by trend_seconds / resolution + 1 points. Not thread-safe: the caller holds its own lock.
    A clock that goes backwards clears the history (the trend would mix two timelines). A value equal to the
    minute's last one keeps that point as it is, so the fit (cached as the moment the line crosses the stop
    edge, which does not depend on when it is read) is redone only when the points change.
    """

    def __init__(self, trend_seconds: float = FORECAST_TREND_SECONDS,
                 resolution_seconds: float = HISTORY_RESOLUTION_SECONDS) -> None:
        if trend_seconds <= 0 or resolution_seconds <= 0:
            raise ValueError("trend_seconds and resolution_seconds must be > 0")
        self.trend_seconds = float(trend_seconds)
        self.resolution_seconds = float(resolution_seconds)
        self.max_points = int(math.ceil(trend_seconds / resolution_seconds)) + 1
        self._points: deque[tuple[float, float]] = deque(maxlen=self.max_points)
        self._crossing: dict[float, float | None] = {}  # stop edge -> when the fitted line reaches it

    def record(self, now: float, headroom: float | None) -> None:
        """Keep `headroom` as the value of `now`'s minute; None or a non-finite value is not recorded."""
        if headroom is None or not math.isfinite(now) or not math.isfinite(headroom):
            return
        if self._points and now < self._points[-1][0]:
            self._points.clear()
        same_minute = bool(self._points) and self._bucket(self._points[-1][0]) == self._bucket(now)
        if not (same_minute and self._points[-1][1] == headroom):
            if same_minute:
                self._points.pop()
            self._points.append((float(now), float(headroom)))
            self._crossing.clear()
        self._prune(now)

    def points(self, now: float) -> list[tuple[float, float]]:
        """The points inside the trend window [now - trend_seconds, now]."""
        start = now - self.trend_seconds
        return [(t, v) for t, v in self._points if start <= t <= now]

    def seconds_to_stop(self, now: float, stop_headroom: float = STOP_HEADROOM) -> float | None:
        """`seconds_to_stop` over the points of the trend window that ends at `now`."""
        self._prune(now)
        if stop_headroom not in self._crossing:
            last = self._points[-1][0] if self._points else now
            left = seconds_to_stop(self.points(last), last, stop_headroom)
            self._crossing[stop_headroom] = None if left is None else last + left
        crossing = self._crossing[stop_headroom]
        return None if crossing is None else max(0.0, crossing - now)

    def hours_to_stop(self, now: float, stop_headroom: float = STOP_HEADROOM) -> float | None:
        seconds = self.seconds_to_stop(now, stop_headroom)
        return None if seconds is None else seconds / 3600.0

    def forecast(self, now: float, headroom: float | None, stop_headroom: float = STOP_HEADROOM) -> float | None:
        """Seconds to the stop band of a pair whose headroom is `headroom` now: 0 once it is in the band (below
        `stop_headroom`); above it the trend's `seconds_to_stop` (None: flat or rising, or too few points)."""
        if headroom is not None and headroom < stop_headroom:
            return 0.0
        return self.seconds_to_stop(now, stop_headroom)

    def __len__(self) -> int:
        return len(self._points)

    def _bucket(self, t: float) -> int:
        return math.floor(t / self.resolution_seconds)

    def _prune(self, now: float) -> None:
        start = now - self.trend_seconds
        while self._points and self._points[0][0] < start:
            self._points.popleft()
            self._crossing.clear()

