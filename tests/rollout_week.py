"""A scripted week of exporter history, written as OpenMetrics with timestamps for `promtool tsdb create-blocks-from`.

Eight days of two-minute samples end at `end` (the baseline reports the last seven; the first is history for
the counters' first step). Day k (0..6) is (end - (7-k) days, end - (6-k) days]; day -1 precedes day 0.

XDGUSD (bot-a):
- day 0 04:00: a partial-cancel -> band stop for 24 h (to day 1 04:00);
- day 1: caution 04:00-08:00, stop by headroom 08:00-12:00, caution 12:00-16:00, then normal;
- day 2: Kraken outage 10:00-13:00 (data available 0, no drift); exporter down 18:00-19:00 (no samples at all),
  restarted at 19:00 with its counters and histogram back at zero;
- day 3: the 24h fill gauges are absent all day (the baseline falls back to the histogram); drift -12 for 5 min;
- day 4: caution from 13:00 (to day 5 06:00); slots 10 -> 11 at 15:00 and -> 12 at 21:00;
- day 5: one slot dropped at 10:00 and added again at 12:00;
- day 6: normal.
Partial-opens every 3 h at hh:30 from 00:30 (the one at day 2 18:30 falls in the outage of the exporter).
XBTUSD (bot-b): normal all week, 5 slots, partial-opens every 6 h from 02:00, no gap.
SOLUSD (bot-c): only a falling headroom over the last 7 h, for the forecast.

Every expected number of the tests is computed from these definitions, not from the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

DAY = 86400
STEP = 120
SAFE_CAP = 168
BUCKETS = ("60", "300", "1800", "+Inf")
BUCKET_STEP = (1, 3, 4, 4)  # cumulative bucket increments per sample: 25% <= 60 s, 75% <= 300 s, all <= 1800 s

Value = Callable[[float], float | None]


@dataclass
class PairScript:
    pair: str
    instance: str
    times: list[float]
    series: dict[str, Value] = field(default_factory=dict)
    histogram: Callable[[float], tuple[int, ...] | None] | None = None


class Week:
    def __init__(self, end: int) -> None:
        self.end = end
        self.first = end - 8 * DAY
        self.all_times = [float(self.first + i * STEP) for i in range(8 * DAY // STEP + 1)]
        self.xdg = self._xdgusd()
        self.xbt = self._xbtusd()
        self.sol = self._solusd()

    # day k, hh:mm -> unix seconds
    def at(self, day: int, hh: float = 0, mm: float = 0) -> float:
        return float(self.end - (7 - day) * DAY + hh * 3600 + mm * 60)

    def day_window(self, day: int) -> tuple[float, float]:
        return self.at(day), self.at(day + 1)

    # -------------------------------------------------------------------------------------------- XDGUSD
    def xdg_gap(self) -> tuple[float, float]:
        return self.at(2, 18), self.at(2, 19)

    def xdg_in_gap(self, t: float) -> bool:
        a, b = self.xdg_gap()
        return a <= t < b

    def xdg_restart(self) -> float:
        return self.xdg_gap()[1]

    def xdg_band(self, t: float) -> int:
        a = self.at
        if a(0, 4) <= t < a(1, 4) or a(1, 8) <= t < a(1, 12):
            return 2
        if a(1, 4) <= t < a(1, 8) or a(1, 12) <= t < a(1, 16) or a(4, 13) <= t < a(5, 6):
            return 1
        return 0

    def xdg_headroom(self, t: float) -> int:
        a = self.at
        if a(1, 8) <= t < a(1, 12):
            return 5
        if self.xdg_band(t) == 1:
            return 15
        return 40 + int((t // STEP) * 7 % 23)

    def xdg_slots(self, t: float) -> int:
        a = self.at
        if t < a(4, 15):
            return 10
        if t < a(4, 21):
            return 11
        if t < a(5, 10):
            return 12
        if t < a(5, 12):
            return 11
        return 12

    def xdg_outage(self, t: float) -> bool:
        return self.at(2, 10) <= t < self.at(2, 13)

    def xdg_drift(self, t: float) -> int | None:
        if self.xdg_outage(t):
            return None
        if self.at(3, 9) <= t < self.at(3, 9, 5):
            return -12
        return int(t // STEP) % 7 - 3

    def xdg_open_events(self) -> list[float]:
        return [self.at(day, 0, 30) + 3 * 3600 * j for day in range(-1, 7) for j in range(8)]

    def xdg_cancel_events(self) -> list[float]:
        return [self.at(0, 4)]

    def _counter(self, events: list[float], restart: float | None) -> Value:
        def value(t: float) -> float:
            since = restart if restart is not None and t >= restart else float("-inf")
            return float(sum(1 for e in events if since <= e <= t and not self.xdg_in_gap(e)))
        return value

    def xdg_fill_gauge(self, t: float, base: float) -> float | None:
        day = self.day_of(t)
        return None if day == 3 else base + (10 if base < 500 else 50) * day

    def day_of(self, t: float) -> int:
        return int((t - self.at(0) - 1e-9) // DAY)

    def _histogram(self, restart: float | None) -> Callable[[float], tuple[int, ...]]:
        def value(t: float) -> tuple[int, ...]:
            origin = restart if restart is not None and t >= restart else self.first - 10_000 * STEP
            n = int((t - origin) // STEP)
            return tuple(n * k for k in BUCKET_STEP)
        return value

    def _xdgusd(self) -> PairScript:
        times = [t for t in self.all_times if not self.xdg_in_gap(t)]
        restart = self.xdg_restart()
        return PairScript("XDGUSD", "bot-a:9477", times, {
            "krakenbot_status_band": lambda t: float(self.xdg_band(t)),
            "krakenbot_open_orders_headroom": lambda t: float(self.xdg_headroom(t)),
            "krakenbot_open_orders_utilization_ratio": lambda t: (SAFE_CAP - self.xdg_headroom(t)) / SAFE_CAP,
            "krakenbot_slots": lambda t: float(self.xdg_slots(t)),
            "krakenbot_open_orders_drift": lambda t: None if self.xdg_drift(t) is None else float(self.xdg_drift(t) or 0),
            "krakenbot_kraken_data_available": lambda t: 0.0 if self.xdg_outage(t) else 1.0,
            "krakenbot_partial_fill_open_events_total": self._counter(self.xdg_open_events(), restart),
            "krakenbot_partial_fill_cancel_events_total": self._counter(self.xdg_cancel_events(), restart),
            "krakenbot_fill_duration_median_1d_seconds": lambda t: self.xdg_fill_gauge(t, 100.0),
            "krakenbot_fill_duration_p95_1d_seconds": lambda t: self.xdg_fill_gauge(t, 900.0),
        }, self._histogram(restart))

    # -------------------------------------------------------------------------------------------- XBTUSD
    def xbt_headroom(self, t: float) -> int:
        return 80 + int(t // STEP) % 11

    def xbt_open_events(self) -> list[float]:
        return [self.at(day, 2) + 6 * 3600 * j for day in range(-1, 7) for j in range(4)]

    def _xbtusd(self) -> PairScript:
        return PairScript("XBTUSD", "bot-b:9477", list(self.all_times), {
            "krakenbot_status_band": lambda t: 0.0,
            "krakenbot_open_orders_headroom": lambda t: float(self.xbt_headroom(t)),
            "krakenbot_open_orders_utilization_ratio": lambda t: (SAFE_CAP - self.xbt_headroom(t)) / SAFE_CAP,
            "krakenbot_slots": lambda t: 5.0,
            "krakenbot_open_orders_drift": lambda t: float(int(t // STEP) % 3 - 1),
            "krakenbot_kraken_data_available": lambda t: 1.0,
            "krakenbot_partial_fill_open_events_total": self._counter(self.xbt_open_events(), None),
            "krakenbot_partial_fill_cancel_events_total": lambda t: 0.0,
            "krakenbot_fill_duration_median_1d_seconds": lambda t: 50.0,
            "krakenbot_fill_duration_p95_1d_seconds": lambda t: 400.0,
        }, self._histogram(None))

    # -------------------------------------------------------------------------------------------- SOLUSD
    def sol_headroom(self, t: float) -> float:
        """Falling about 3 orders an hour from 70, with a deterministic wobble."""
        i = int((t - self.end) // STEP)
        return 70.0 - (t - (self.end - 7 * 3600)) * 3 / 3600 + ((i * 37) % 11 - 5) * 0.8

    def _solusd(self) -> PairScript:
        times = [t for t in self.all_times if t >= self.end - 7 * 3600]
        return PairScript("SOLUSD", "bot-c:9477", times, {"krakenbot_open_orders_headroom": self.sol_headroom})

    # -------------------------------------------------------------------------------------------- output
    def scripts(self) -> list[PairScript]:
        return [self.xdg, self.xbt, self.sol]

    def openmetrics(self) -> Iterator[str]:
        """OpenMetrics with timestamps in seconds and a final `# EOF`, for `promtool tsdb create-blocks-from`."""
        yield from self._exposition(lambda t: f"{t:.0f}")
        yield "# EOF\n"

    def prometheus_text(self) -> Iterator[str]:
        """The same samples as Prometheus' text format with timestamps in milliseconds, for VictoriaMetrics'
        `/api/v1/import/prometheus`."""
        yield from self._exposition(lambda t: f"{t * 1000:.0f}")

    def _exposition(self, stamp: Callable[[float], str]) -> Iterator[str]:
        names = sorted({name for s in self.scripts() for name in s.series})
        for name in names:
            family = name.removesuffix("_total")
            yield f"# TYPE {family} {'counter' if name.endswith('_total') else 'gauge'}\n"
            for script in self.scripts():
                value = script.series.get(name)
                if value is None:
                    continue
                labels = f'instance="{script.instance}",job="kraken-capacity-exporter",pair="{script.pair}"'
                for t in script.times:
                    v = value(t)
                    if v is not None:
                        yield f"{name}{{{labels}}} {v!r} {stamp(t)}\n"
        yield "# TYPE krakenbot_fill_duration_seconds histogram\n"
        for script in self.scripts():
            if script.histogram is None:
                continue
            histogram = script.histogram
            labels = f'instance="{script.instance}",job="kraken-capacity-exporter",pair="{script.pair}"'
            for b, le in enumerate(BUCKETS):
                for t in script.times:
                    yield f'krakenbot_fill_duration_seconds_bucket{{{labels},le="{le}"}} {histogram(t)[b]} {stamp(t)}\n'

    def fleet_import(self, pairs: list[str], per_host: int = 10) -> Iterator[bytes]:
        """XDGUSD's week copied to each of `pairs` (`per_host` pairs per exporter instance), as JSON lines for
        VictoriaMetrics' `/api/v1/import`: one line per series, its values computed once and shared by every pair."""
        script = self.xdg
        series: list[tuple[str, dict[str, str], str]] = []
        for name, value in sorted(script.series.items()):
            points = [(t, value(t)) for t in script.times]
            series.append((name, {}, _json_points([(t, v) for t, v in points if v is not None])))
        if script.histogram is not None:
            histogram = script.histogram
            for b, le in enumerate(BUCKETS):
                points = [(t, float(histogram(t)[b])) for t in script.times]
                series.append(("krakenbot_fill_duration_seconds_bucket", {"le": le}, _json_points(points)))
        for i, pair in enumerate(pairs):
            labels = {"instance": f"bot-{i // per_host:02d}:9477", "job": "kraken-capacity-exporter", "pair": pair}
            for name, extra, points in series:
                metric = json.dumps({"__name__": name, **labels, **extra})
                yield f'{{"metric":{metric},{points}}}\n'.encode()


def _json_points(points: list[tuple[float, float | None]]) -> str:
    values = json.dumps([v for _, v in points])
    stamps = json.dumps([int(t * 1000) for t, _ in points])
    return f'"values":{values},"timestamps":{stamps}'


if __name__ == "__main__":  # python3 -m tests.rollout_week week.om [END]: the week docs/rollout.md's examples ran on
    import sys
    import time

    end = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time() // 3600 * 3600 - 3600)
    with open(sys.argv[1], "w") as out:
        out.writelines(Week(end).openmetrics())
    print(f"wrote {sys.argv[1]}: 8 days of XDGUSD, XBTUSD (and SOLUSD's last 7 h) ending at {end}")
