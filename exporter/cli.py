"""The `kraken-capacity-exporter` command: `demo` (the default), `serve` (Kraken only) and `scrape` (a bot's
/api/status). Every failure a user can cause (a bad setting, a port in use, an unknown pair, unusable
credentials) ends in one line naming the setting and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from . import __version__
from .clock import AcceleratedClock
from .config import Config, ConfigError, add_arguments, load_config
from .credentials import CredentialsError, KrakenCredentials
from .demo import SimulatedBot, SimulatedExchange
from .fake_kraken import FakeKraken
from .http import RunningServer
from .kraken_api import KrakenError, ReadOnlyKraken
from .kraken_source import KrakenOpenOrdersPoller, KrakenSourceMetrics, resolve_pairs
from .pairs import PairError
from .service import CapacityExporter
from .standalone import StandaloneSource
from .status_scraper import BotStatusScraper, ScrapeMetrics

PROG = "kraken-capacity-exporter"
log = logging.getLogger("kraken_capacity_exporter")
COMMAND_HELP = {
    "demo": "simulated bot and a local fake Kraken on an accelerated clock; no keys, no Docker (the default)",
    "serve": "standalone: export what Kraken's OpenOrders says for the pair(s), with a read-only API key",
    "scrape": "mirror an existing bot's /api/status capacity_fill_health block to Prometheus",
}
DEMO_POLL_WALL_SECONDS = 1.0


class _Worker(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


DEMO_OUTAGE_WALL_SECONDS = 30.0
DEMO_FIRST_OUTAGE_AFTER = 90.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Read-only capacity and fill-health telemetry for Kraken grid bots.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    for name, text in COMMAND_HELP.items():
        add_arguments(sub.add_parser(name, help=text, description=text), name)
    return parser


def bind(config: Config, exporter: CapacityExporter) -> RunningServer:
    """Start the HTTP server, turning a taken port into a ConfigError that names the setting."""
    try:
        server = exporter.serve(config.host, config.port)
    except OSError as exc:
        raise ConfigError(f"--port/--host: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    print(f"{PROG} {__version__} ({config.command}) listening on {server.url}", flush=True)
    for path in ("/metrics", "/api/status", "/healthz"):
        print(f"  {server.url}{path}", flush=True)
    return server


def resolve_or_explain(client: ReadOnlyKraken, pairs: Sequence[str]) -> dict:
    """Pair names from AssetPairs; an unknown pair is a ConfigError, an unreachable Kraken only a warning."""
    try:
        return resolve_pairs(client, pairs)
    except PairError as exc:
        raise ConfigError(f"--pair: {exc}") from None
    except KrakenError as exc:
        log.warning("cannot ask Kraken's AssetPairs now (%s: %s); matching the pair's usual spellings", exc.result, exc)
        return {}


def run_demo(config: Config, stop: threading.Event) -> int:
    """Simulated bots whose orders live in a fake Kraken that our poller reads through krakenex."""
    clock = AcceleratedClock(config.speedup)
    exporter = CapacityExporter(clock=clock)
    rng = random.Random(config.seed)
    exchange = SimulatedExchange(rng)
    stale_sim_seconds = (config.kraken_stale_after or 5.0) * config.speedup  # demo telemetry runs on simulated time
    key, secret = f"demo-{rng.getrandbits(64):016x}", base64.b64encode(rng.randbytes(64)).decode()
    fake = FakeKraken(key, secret, open_orders=lambda: exchange.open_orders_result()["open"])
    client = ReadOnlyKraken(KrakenCredentials(key, secret), fake.start(), timeout=2.0)
    names = resolve_or_explain(client, config.pair_list)
    bots, telemetries = [], []
    for pair in config.pair_list:
        telemetry = exporter.add_pair(pair, config.limit, config.safety_ratio, kraken_stale_after=stale_sim_seconds)
        if pair in names:
            telemetry.set_pair_names(names[pair])
        telemetries.append(telemetry)
        bots.append(SimulatedBot(telemetry.pair, exchange, telemetry, clock, rng, feed_kraken=False,
                                 canary_every_hours=config.canary_every))
    poller = KrakenOpenOrdersPoller(client, telemetries, KrakenSourceMetrics(exporter.registry), interval=DEMO_POLL_WALL_SECONDS)
    server = bind(config, exporter)
    print(f"  demo clock: {config.speedup:g}x (a simulated day every {86400 / config.speedup:.0f} s); "
          f"fake Kraken at {fake.url}", flush=True)
    poller.start()
    tick = min(1.0, max(0.05, 120.0 / config.speedup))  # about one bot poll: 2 simulated minutes
    started = time.monotonic()
    outage = _OutageSchedule(fake, config.outage_every)
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if config.duration and elapsed >= config.duration:
                break
            for bot in bots:
                bot.tick()
            outage.update(elapsed)
            stop.wait(tick)
    finally:
        poller.stop()
        server.stop()
        fake.stop()
    return 0


class _OutageSchedule:
    """The demo's scripted Kraken outage, so the fallback to the internal count can be seen."""

    def __init__(self, fake: FakeKraken, every: float) -> None:
        self.fake = fake
        self.every = every
        self.next_start = DEMO_FIRST_OUTAGE_AFTER if every else None
        self.ends_at: float | None = None

    def update(self, elapsed: float) -> None:
        if self.ends_at is not None and elapsed >= self.ends_at:
            self.fake.heal()
            self.ends_at = None
            log.info("demo: the fake Kraken answers again")
        if self.next_start is not None and elapsed >= self.next_start:
            self.fake.fail("EService:Unavailable")
            self.ends_at = elapsed + DEMO_OUTAGE_WALL_SECONDS
            self.next_start = elapsed + self.every
            log.info("demo: scripted Kraken outage for %.0f s (falls back to the internal count)", DEMO_OUTAGE_WALL_SECONDS)


def load_credentials(config: Config, env: dict[str, str]) -> KrakenCredentials:
    try:
        if config.kraken_key_file:
            return KrakenCredentials.from_file(config.kraken_key_file)
        credentials = KrakenCredentials.from_env(env)
    except CredentialsError as exc:
        setting = "--kraken-key-file" if config.kraken_key_file else "KRAKEN_API_KEY/KRAKEN_API_SECRET"
        raise ConfigError(f"{setting}: {exc}") from None
    if credentials is None:
        raise ConfigError("KRAKEN_API_KEY/KRAKEN_API_SECRET: not set (or use --kraken-key-file); "
                          "a read-only key with 'Query Open Orders & Trades' is enough")
    return credentials


def run_serve(config: Config, stop: threading.Event, env: dict[str, str] | None = None) -> int:
    """Standalone: our own poller with a read-only key; bot-side fields are unknown and said so."""
    credentials = load_credentials(config, dict(os.environ) if env is None else env)
    exporter = CapacityExporter()
    client = ReadOnlyKraken(credentials, config.kraken_url, timeout=config.kraken_timeout)
    names = resolve_or_explain(client, config.pair_list)
    stale = config.kraken_stale_after or 4 * config.kraken_poll_interval
    telemetries = []
    for pair in config.pair_list:
        telemetry = exporter.new_telemetry(pair, config.limit, config.safety_ratio, kraken_stale_after=stale)
        if pair in names:
            telemetry.set_pair_names(names[pair])
        exporter.add_source(StandaloneSource(telemetry))
        telemetries.append(telemetry)
    poller = KrakenOpenOrdersPoller(client, telemetries, KrakenSourceMetrics(exporter.registry),
                                    interval=config.kraken_poll_interval)
    return serve_until_stopped(config, exporter, poller, stop)


def serve_until_stopped(config: Config, exporter: CapacityExporter, worker: _Worker, stop: threading.Event) -> int:
    """Bind, start the background worker (poller or scraper), and wait for SIGTERM/Ctrl-C."""
    server = bind(config, exporter)
    worker.start()
    try:
        stop.wait()
    finally:
        worker.stop()
        server.stop()
    return 0


def run_scrape(config: Config, stop: threading.Event) -> int:
    """Mirror one bot's /api/status block."""
    if len(config.pairs) > 1:
        raise ConfigError("--pair: scrape mirrors one bot's block; give one pair (or none to use the payload's)")
    exporter = CapacityExporter()
    scraper = BotStatusScraper(config.status_url or "", ScrapeMetrics(exporter.registry),
                               pair=config.pairs[0] if config.pairs else None,
                               interval=config.scrape_interval, timeout=config.scrape_timeout)
    exporter.add_source(scraper)
    return serve_until_stopped(config, exporter, scraper, stop)


COMMANDS: dict[str, Callable[[Config, threading.Event], int]] = {
    "demo": run_demo, "serve": run_serve, "scrape": run_scrape,
}


def main(argv: Sequence[str] | None = None, stop: threading.Event | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "demo")
    args = build_parser().parse_args(argv)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        config = load_config(args.command, args, os.environ)
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return COMMANDS[args.command](config, stop)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
