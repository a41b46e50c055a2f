"""`CapacityExporter`: the pairs of one process and the Prometheus registry that exports them.

A bot with one pair can use a bare `CapacityTelemetry`; this object adds Prometheus instruments, several
pairs, mirrored sources (a scraped bot) and what the HTTP app serves.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Info, gc_collector, platform_collector, process_collector

from .core import defaults
from .core.clock import Clock, SystemClock
from .core.forecast import HeadroomHistory
from .core.naming import PREFIX
from .core.order_rate import tier as tier_walls
from .core.reading import PairReading, PairSource
from .core.telemetry import CapacityTelemetry
from .core.thresholds import DEFAULT_SAFETY_RATIO
from .core.version import __version__
from .web.app import HttpSettings, RunningServer, WebConfigFile, create_app, start_server
from .web.metrics import CapacityCollector

MODES = ("demo", "serve", "scrape", "embedded")


class CapacityExporter:
    """`mode` says where the data comes from (demo|serve|scrape|embedded): exported in
    `krakenbot_exporter_info{version, mode, tier}` and /api/status, so simulated data never passes for production."""

    def __init__(
        self, registry: CollectorRegistry | None = None, clock: Clock | None = None, mode: str = "embedded",
        tier: str | None = defaults.KRAKEN_TIER,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        # the pairs' default tier (both walls' defaults); a scraped bot's tier is the bot's, not known here
        self.tier: str | None = None if mode == "scrape" or tier is None else tier_walls(tier).name
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock or SystemClock()
        self.mode = mode
        add_standard_collectors(self.registry)
        Info(f"{PREFIX}_exporter", "The exporter's version and where its data comes from (demo is simulated).",
             registry=self.registry).info({"version": __version__, "mode": mode, "tier": self.tier or "unknown"})
        self._sources: list[PairSource] = []  # a list: a scraped source learns its pair from the payload
        self._lock = threading.Lock()
        self._headroom: dict[str, HeadroomHistory] = {}  # pair -> its recent headroom, for the forecast
        self._forecast_lock = threading.Lock()
        self.registry.register(CapacityCollector(self.readings))

    def add_pair(
        self, pair: str, limit: int | None = None, safety_ratio: float = DEFAULT_SAFETY_RATIO, **options: Any
    ) -> CapacityTelemetry:
        """Create the telemetry a bot feeds for `pair`, wired to this registry's counters, and export it.
        `tier=` (starter|intermediate|pro; default the exporter's) sets the open-order limit unless `limit` is
        given, and the order rate counter's threshold and decay."""
        telemetry = self.new_telemetry(pair, limit, safety_ratio, **options)
        self.add_source(telemetry)
        return telemetry

    def new_telemetry(
        self, pair: str, limit: int | None = None, safety_ratio: float = DEFAULT_SAFETY_RATIO, **options: Any
    ) -> CapacityTelemetry:
        """A telemetry on this exporter's clock, not exported by itself (a wrapper source is)."""
        if self.tier is not None:
            options.setdefault("tier", self.tier)
        return CapacityTelemetry(pair, limit, safety_ratio, clock=self.clock, **options)

    def add_source(self, source: PairSource) -> None:
        with self._lock:
            if any(s.pair == source.pair for s in self._sources):
                raise ValueError(f"pair {source.pair} is configured twice")
            self._sources.append(source)

    def remove_pair(self, pair: str) -> None:
        """Forget a pair; its series disappear from /metrics."""
        with self._lock:
            self._sources = [s for s in self._sources if s.pair != pair]
        with self._forecast_lock:
            self._headroom.pop(pair, None)

    @property
    def pairs(self) -> list[str]:
        with self._lock:
            return [s.pair for s in self._sources]

    def source(self, pair: str) -> PairSource | None:
        with self._lock:
            return next((s for s in self._sources if s.pair == pair), None)

    def serve(
        self, host: str = defaults.HOST, port: int = defaults.PORT,
        web: WebConfigFile | None = None, settings: HttpSettings | None = None,
    ) -> RunningServer:
        """Serve /metrics, /api/status and /healthz from a daemon thread; `stop()` the result to end it.
        `web`: a loaded `--web-config-file` (TLS, basic auth, headers); `settings`: the HTTP edge's bounds."""
        tls = web.ssl_context() if web is not None else None
        return start_server(create_app(self, web), host, port, settings=settings, tls=tls)

    def readings(self) -> list[PairReading]:
        """Every pair's reading now, each with its time-to-stop forecast from the headroom seen so far."""
        with self._lock:
            sources = list(self._sources)
        readings = [s.reading() for s in sources]
        with self._forecast_lock:
            # the clock is read under the lock: overlapping reads record in the order they read it, so one never
            # looks like the clock stepping back (which clears the history)
            now = self.clock.now()
            for gone in self._headroom.keys() - {r.pair for r in readings}:  # a renamed or removed pair's history
                del self._headroom[gone]
            return [self._with_forecast(reading, now) for reading in readings]

    def _with_forecast(self, reading: PairReading, now: float) -> PairReading:
        """Record the pair's headroom (once a minute is enough; see `HeadroomHistory`) and attach the forecast.

        A blind pair records nothing and has no forecast: its headroom cannot be vouched for. In the stop band the
        forecast is 0 (the band is here now); above it, absent while the headroom is not falling."""
        history = self._headroom.setdefault(reading.pair, HeadroomHistory())
        if reading.blind or reading.health is None:  # (no health is blind too: said again for mypy)
            return reading
        headroom = reading.health.open_order_headroom
        history.record(now, headroom)
        return dataclasses.replace(reading, forecast_seconds_to_stop=history.forecast(now, headroom))


def add_standard_collectors(registry: CollectorRegistry) -> None:
    """The process (`process_start_time_seconds`, CPU, memory, fds), platform and GC collectors every Python
    exporter has. prometheus_client's default registry already holds them, so it is left as it is."""
    if registry is REGISTRY:
        return
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
