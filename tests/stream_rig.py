"""A `serve`-like source on the fake Kraken's REST side and its WebSocket v2 stream, built as `build_serve` builds it
(stream, cross-checking poller, standalone sources), with knobs the tests need (silence, backoff)."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from statistics import median

from prometheus_client import CollectorRegistry

from exporter import CapacityExporter
from exporter.core.clock import Clock
from exporter.core.windows import percentile_nearest_rank
from exporter.demo.fake_account import FakeAccount
from exporter.demo.fake_kraken import READ_ONLY_PERMISSIONS, FakeKraken
from exporter.demo.fake_kraken_stream import FakeKrakenStream
from exporter.sources.credentials import KrakenCredentials
from exporter.sources.kraken_api import ReadOnlyKraken
from exporter.sources.kraken_poller import FALLBACK_BLIND, KrakenOpenOrdersPoller, KrakenSourceMetrics, resolve_pairs
from exporter.sources.kraken_stream import KrakenStream, StreamMetrics
from exporter.sources.standalone import StandaloneSource
from tests.conftest import wait_for

KEY = "test-key-0001"
PAIRS = ("XDGUSD", "XBTUSD")


@contextmanager
def fake_kraken(secret: str, heartbeat: float, *, slow_seconds: float = 0.0,
                **stream_options: object) -> Iterator[tuple[FakeAccount, FakeKraken, FakeKrakenStream]]:
    """The fake Kraken's REST side and its WebSocket v2 stream over one account, started; stopped on the way out."""
    account = FakeAccount()
    rest = FakeKraken(KEY, secret, account=account, slow_seconds=slow_seconds)
    rest.start()
    stream = FakeKrakenStream(account, rest.tokens, heartbeat_seconds=heartbeat, **stream_options)  # type: ignore[arg-type]
    stream.start()
    try:
        yield account, rest, stream
    finally:
        stream.stop()
        rest.stop()


class StreamRig:
    def __init__(self, secret: str, *, permissions: frozenset[str] = READ_ONLY_PERMISSIONS, silence: float = 5.0,
                 max_backoff: float = 0.3, poll_interval: float = 0.2, heartbeat: float = 0.1,
                 clock: Clock | None = None, stale_after: float = 30.0,
                 rest_counter: tuple[float, float] | None = None, rest_pace: float = 0.05,
                 fake_tier: str = "pro") -> None:
        self.account = FakeAccount()
        self.fake = FakeKraken(KEY, secret, account=self.account, permissions=permissions, rest_counter=rest_counter)
        url = self.fake.start()
        self.server = FakeKrakenStream(self.account, self.fake.tokens, heartbeat_seconds=heartbeat,
                                       tier=fake_tier)
        ws_url = self.server.start()
        self.registry = CollectorRegistry()
        self.exporter = CapacityExporter(registry=self.registry, clock=clock, mode="serve")
        self.client = ReadOnlyKraken(KrakenCredentials(KEY, secret), url, timeout=2.0)
        names = resolve_pairs(self.client, PAIRS)
        self.telemetries = {}
        for pair in PAIRS:
            telemetry = self.exporter.new_telemetry(pair, kraken_stale_after=stale_after)
            telemetry.set_pair_names(names[pair])
            self.telemetries[pair] = telemetry
        self.source_metrics = KrakenSourceMetrics(self.registry)
        self.stream = KrakenStream(self.client, list(self.telemetries.values()), StreamMetrics(self.registry),
                                   self.source_metrics, url=ws_url, silence=silence, max_backoff=max_backoff,
                                   rng=random.Random(7), rest_pace=rest_pace)
        for telemetry in self.telemetries.values():
            self.exporter.add_source(StandaloneSource(telemetry, events=self.stream))
        self.poller = KrakenOpenOrdersPoller(self.client, list(self.telemetries.values()), self.source_metrics,
                                             interval=poll_interval, fallback=FALLBACK_BLIND, stream=self.stream)

    def start(self, wait_live: bool = True) -> StreamRig:
        self.stream.start()
        if wait_live:
            assert wait_for(lambda: self.stream.live, timeout=20), self.stream.reconnects
        return self

    def stop(self) -> None:
        self.poller.stop()
        self.stream.stop()
        self.server.stop()
        self.fake.stop()

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def reconnects(self, reason: str) -> float:
        return self.value("krakenbot_kraken_stream_reconnects_total", reason=reason) or 0.0

    def health(self, pair: str = "XDGUSD"):
        return self.telemetries[pair].snapshot()

    def settled(self, pair: str = "XDGUSD") -> bool:
        """The stream is live, nothing waits for REST, and the pair's count is the account's."""
        return (self.stream.live and not self.stream.book.pending_lookups()
                and self.health(pair).open_orders_kraken == len(self.account.open_txids(pair)))


def fill_times(account: FakeAccount, txids: list[str]) -> tuple[float | None, float | None]:
    """Median and nearest-rank p95 of the fills' times on the account's own clock (went live -> filled)."""
    durations = []
    for txid in txids:
        order = account.order(txid)
        assert order is not None and order.status == "closed" and order.closed_at is not None
        durations.append(order.closed_at - order.opened_at)
    return (median(durations) if durations else None), percentile_nearest_rank(durations, 95)


def canaries(caplog, txid: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "PHANTOM_POSITION_CANARY" in r.getMessage() and f"txid={txid} " in r.getMessage()]
