"""The demo's wiring: simulated bots whose orders live in a local fake Kraken, read by our real sources on an
accelerated clock: Kraken's WebSocket v2 `executions` stream (partial fills, partial-cancels with Kraken's reason and
fill times arrive live, timestamped in simulated time) and the `OpenOrders` poller through krakenex as its
cross-check, with a scripted Kraken outage (REST down, the stream dropped) so the fallback and the recovery can be
seen. `DemoSettings(stream=False)` runs it as before the stream: the simulated bot calls the order hooks itself.

`Demo` is a worker like the poller: `start()` and `stop()`; the CLI binds the HTTP server and waits.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from dataclasses import dataclass

from ..core import defaults
from ..core.capacity import CapacityFillHealth, band_reason
from ..core.clock import AcceleratedClock
from ..core.pairs import PairError, PairNames
from ..core.telemetry import CapacityTelemetry
from ..service import CapacityExporter
from ..sources.credentials import KrakenCredentials
from ..sources.kraken_api import ReadOnlyKraken
from ..sources.kraken_poller import KrakenOpenOrdersPoller, KrakenSourceMetrics, resolve_pairs
from ..sources.kraken_stream import KrakenStream, StreamMetrics
from ..sources.standalone import StreamEventsSource
from ..sources.worker import BackgroundWorker
from .fake_account import FakeAccount
from .fake_kraken import ASSET_PAIRS, FakeKraken
from .fake_kraken_stream import FakeKrakenStream
from .simulation import SimulatedBot, SimulatedExchange

log = logging.getLogger("kraken_capacity_exporter")

POLL_WALL_SECONDS = 1.0
STREAM_MAX_BACKOFF = 8.0  # wall seconds: the demo's stream is back within seconds of the scripted outage
OUTAGE_WALL_SECONDS = 30.0
FIRST_OUTAGE_AFTER = 90.0


@dataclass(frozen=True)
class DemoSettings:
    pairs: tuple[str, ...]
    limit: int
    safety_ratio: float
    speedup: float
    seed: int | None = None
    kraken_stale_after: float = defaults.DEMO_KRAKEN_STALE_AFTER  # wall seconds; the telemetry runs on simulated time
    canary_every_hours: float = 0.0
    outage_every: float = 0.0  # wall seconds; 0: no scripted outage
    stream: bool = defaults.KRAKEN_STREAM  # the fake Kraken's executions stream reports the orders (False: the hooks)
    stream_silence: float = defaults.KRAKEN_STREAM_SILENCE  # wall seconds
    tier: str = defaults.KRAKEN_TIER


def simulated_pairs() -> list[str]:
    """The pairs the demo's fake Kraken lists in AssetPairs, so the only ones the demo can simulate."""
    return [info["altname"] for info in ASSET_PAIRS.values()]


def not_simulated_message(pairs: tuple[str, ...]) -> str:
    known = set(simulated_pairs())
    missing = [p for p in pairs if PairNames.offline(p).label not in known and p not in known] or list(pairs)
    return (f"the demo simulates {', '.join(simulated_pairs())} only, not {', '.join(missing)} "
            "(serve and scrape take any pair Kraken lists)")


class OutageSchedule:
    """The scripted Kraken outage: the first at 90 s, then every `every` seconds, 30 s each (REST fails, the stream
    drops and cannot get a token until it ends)."""

    def __init__(self, fake: FakeKraken, every: float, stream: FakeKrakenStream | None = None) -> None:
        self.fake = fake
        self.stream = stream
        self.every = every
        self.next_start = FIRST_OUTAGE_AFTER if every else None
        self.ends_at: float | None = None

    def update(self, elapsed: float) -> None:
        if self.ends_at is not None and elapsed >= self.ends_at:
            self.fake.heal()
            self.ends_at = None
            log.info("demo: the fake Kraken answers again")
        if self.next_start is not None and elapsed >= self.next_start:
            self.fake.fail("EService:Unavailable")
            if self.stream is not None:
                self.stream.disconnect()
            self.ends_at = elapsed + OUTAGE_WALL_SECONDS
            self.next_start = elapsed + self.every
            log.info("demo: scripted Kraken outage for %.0f s (falls back to the internal count)", OUTAGE_WALL_SECONDS)


def why(health: CapacityFillHealth) -> str:
    """Why the pair is in its band, in the words of the thresholds: `headroom 18 < 20`."""
    if health.status_band is None or health.open_order_headroom is None:
        return "unknown"
    return band_reason(health.status_band, health.open_order_headroom, health.partial_fill_cancel_events_1d or 0)


class BandChangeLog:
    """Writes one line per band change of each pair, so the terminal shows what the card shows."""

    def __init__(self) -> None:
        self._bands: dict[str, str | None] = {}

    def update(self, pair: str, health: CapacityFillHealth) -> str | None:
        """The line for a change (also logged), or None when the band is as before."""
        band, before = health.status_band, self._bands.get(pair)
        if band is None or band == before:
            return None
        self._bands[pair] = band
        line = (f"{pair}: {before} → {band} ({why(health)})" if before is not None
                else f"{pair}: starts in {band} ({why(health)})")
        log.info("%s", line)
        return line


class SimulatedOperator(BackgroundWorker):
    """Ticks every simulated bot about once per simulated bot poll (2 simulated minutes), and the outage script."""

    thread_name = "demo-operator"

    def __init__(self, bots: list[SimulatedBot], outage: OutageSchedule, speedup: float) -> None:
        super().__init__(min(1.0, max(0.05, 120.0 / speedup)), join_timeout=5)
        self.bots = bots
        self.outage = outage
        self.bands = BandChangeLog()
        self._started: float | None = None

    def run_once(self) -> None:
        if self._started is None:
            self._started = time.monotonic()
        for bot in self.bots:
            bot.tick()
            if bot.telemetry is not None:
                self.bands.update(bot.pair, bot.telemetry.snapshot())
        self.outage.update(time.monotonic() - self._started)


class Demo:
    """Everything the demo runs besides the HTTP server."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.clock = AcceleratedClock(settings.speedup)
        self.exporter = CapacityExporter(clock=self.clock, mode="demo", tier=settings.tier)
        rng = random.Random(settings.seed)
        self.account = FakeAccount(clock=self.clock.now) if settings.stream else None
        self.exchange = SimulatedExchange(rng, account=self.account)
        key, secret = f"demo-{rng.getrandbits(64):016x}", base64.b64encode(rng.randbytes(64)).decode()
        rest_book = None if self.account is not None else (lambda: self.exchange.open_orders_result()["open"])
        self.fake = FakeKraken(key, secret, open_orders=rest_book, account=self.account)
        client = ReadOnlyKraken(KrakenCredentials(key, secret), self.fake.start(), timeout=2.0)
        self.fake_stream = (FakeKrakenStream(self.account, self.fake.tokens, tier=settings.tier)
                            if self.account is not None else None)
        try:
            names = resolve_pairs(client, settings.pairs)
            telemetries = [self._add_pair(pair, names) for pair in settings.pairs]
        except PairError:
            self.fake.stop()
            raise PairError(not_simulated_message(settings.pairs)) from None
        except BaseException:
            self.fake.stop()
            raise
        bots = [SimulatedBot(t.pair, self.exchange, t, self.clock, rng, feed_kraken=False,
                             canary_every_hours=settings.canary_every_hours, feed_orders=not settings.stream)
                for t in telemetries]
        source_metrics = KrakenSourceMetrics(self.exporter.registry)
        self.stream: KrakenStream | None = None
        if self.fake_stream is not None:
            self.stream = KrakenStream(client, telemetries, StreamMetrics(self.exporter.registry), source_metrics,
                                       url=self.fake_stream.start(), silence=settings.stream_silence,
                                       max_backoff=STREAM_MAX_BACKOFF, rng=random.Random(settings.seed),
                                       rest_pace=0.2)
            for telemetry in telemetries:  # /api/status says the events come from the stream
                self.exporter.add_source(StreamEventsSource(telemetry, self.stream))
        self.poller = KrakenOpenOrdersPoller(client, telemetries, source_metrics, interval=POLL_WALL_SECONDS,
                                             stream=self.stream)
        self.operator = SimulatedOperator(bots, OutageSchedule(self.fake, settings.outage_every, self.fake_stream),
                                          settings.speedup)

    def _add_pair(self, pair: str, names: dict) -> CapacityTelemetry:
        stale_sim_seconds = self.settings.kraken_stale_after * self.settings.speedup
        add = self.exporter.new_telemetry if self.settings.stream else self.exporter.add_pair  # (the stream's: below)
        telemetry = add(pair, self.settings.limit, self.settings.safety_ratio, kraken_stale_after=stale_sim_seconds)
        if pair in names:
            telemetry.set_pair_names(names[pair])
        return telemetry

    @property
    def fake_url(self) -> str:
        return self.fake.url

    def start(self) -> None:
        if self.stream is not None:
            self.stream.start()
        self.poller.start()
        self.operator.start()

    def stop(self) -> None:
        self.operator.stop()
        self.poller.stop()
        if self.stream is not None:
            self.stream.stop()
        if self.fake_stream is not None:
            self.fake_stream.stop()
        self.fake.stop()
