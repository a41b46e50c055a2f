"""The `kraken-capacity-exporter` command: `demo` (the default), `serve` (Kraken only) and `scrape` (a bot's
/api/status). Every failure a user can cause (a bad setting, a port in use, an unknown pair, unusable
credentials) ends in one line naming the setting and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from .config import Config, ConfigError, add_arguments, load_config
from .core import defaults
from .core.pairs import PairError
from .core.version import __version__
from .demo.run import Demo, DemoSettings
from .rollout import COMMAND_HELP as ROLLOUT_HELP
from .rollout import main as run_rollout
from .service import CapacityExporter
from .sources.credentials import CredentialsError, KrakenCredentials
from .sources.kraken_api import KrakenError, ReadOnlyKraken
from .sources.kraken_poller import FALLBACK_BLIND, KrakenOpenOrdersPoller, KrakenSourceMetrics, resolve_pairs
from .sources.kraken_stream import KrakenStream, StreamMetrics
from .sources.standalone import StandaloneSource
from .sources.status_scraper import BotStatusScraper, ScrapeMetrics
from .sources.worker import default_stale_after
from .web.app import HttpSettings, RunningServer
from .web.web_config import WebConfigError, WebConfigFile

PROG = "kraken-capacity-exporter"
log = logging.getLogger("kraken_capacity_exporter")
COMMAND_HELP = {
    "demo": "simulated bot and a local fake Kraken on an accelerated clock; no keys, no Docker (the default)",
    "serve": "standalone: the whole spec from Kraken's executions stream and OpenOrders, with a read-only API key",
    "scrape": "mirror an existing bot's /api/status capacity_fill_health block to Prometheus",
}


class _Worker(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class _Together:
    """Several workers started in order and stopped in reverse (serve's poller and stream)."""

    def __init__(self, *workers: _Worker | None) -> None:
        self.workers = [w for w in workers if w is not None]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in reversed(self.workers):
            worker.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Read-only capacity and fill-health telemetry for Kraken grid bots.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    for name, text in COMMAND_HELP.items():
        add_arguments(sub.add_parser(name, help=text, description=text), name)
    for name, text in ROLLOUT_HELP.items():  # listed here; parsed by exporter/rollout/
        sub.add_parser(name, help=text, add_help=False)
    return parser


def load_web_config_file(config: Config) -> WebConfigFile | None:
    """The `--web-config-file`, loaded and checked (TLS files, hashes); a problem is a one-line ConfigError."""
    try:
        return WebConfigFile(config.web_config_file) if config.web_config_file else None
    except WebConfigError as exc:
        raise ConfigError(f"--web-config-file: {exc}") from None


def bind(config: Config, exporter: CapacityExporter, web: WebConfigFile | None = None) -> RunningServer:
    """Start the HTTP server (with the web config `main` loaded), turning a taken port into a ConfigError."""
    settings = HttpSettings(idle_timeout=config.web_idle_timeout, max_connections=config.web_max_connections,
                            threads=config.web_threads)
    try:
        server = exporter.serve(config.host, config.port, web=web, settings=settings)
    except OSError as exc:
        raise ConfigError(f"--port/--host: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    print(f"{PROG} {__version__} ({config.command}) listening on {server.url}", flush=True)
    for path in ("/metrics", "/api/status", "/healthz", "/", "/runbooks"):
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


def run_demo(config: Config, stop: threading.Event, *, web: WebConfigFile | None = None) -> int:
    """Simulated bots whose orders live in a fake Kraken that our poller reads through krakenex."""
    settings = DemoSettings(
        pairs=config.pair_list, limit=config.limit, safety_ratio=config.safety_ratio, speedup=config.speedup,
        seed=config.seed, kraken_stale_after=config.kraken_stale_after or defaults.DEMO_KRAKEN_STALE_AFTER,
        canary_every_hours=config.canary_every, outage_every=config.outage_every, stream=config.kraken_stream,
        tier=config.kraken_tier,
    )
    try:
        demo = Demo(settings)
    except PairError as exc:
        raise ConfigError(f"--pair: {exc}") from None
    banner = (f"  demo clock: {config.speedup:g}x (a simulated day every {86400 / config.speedup:.0f} s); "
              f"fake Kraken at {demo.fake_url}" + (f", its stream at {demo.fake_stream.url}" if demo.fake_stream else ""))
    try:
        return serve_until_stopped(config, demo.exporter, demo, stop, banner=banner, duration=config.duration,
                                   web=web)
    finally:
        demo.stop()


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


def run_serve(
    config: Config, stop: threading.Event, env: dict[str, str] | None = None, *, web: WebConfigFile | None = None,
) -> int:
    """Standalone: our own poller with a read-only key; bot-side fields are unknown and said so."""
    credentials = load_credentials(config, dict(os.environ) if env is None else env)
    exporter, poller = build_serve(config, credentials)
    stream = poller.stream if isinstance(poller.stream, KrakenStream) else None
    return serve_until_stopped(config, exporter, _Together(stream, poller), stop, web=web)


def build_serve(config: Config, credentials: KrakenCredentials) -> tuple[CapacityExporter, KrakenOpenOrdersPoller]:
    """What `serve` runs: one StandaloneSource per pair, fed by Kraken's executions stream (`poller.stream`, unless
    `--kraken-stream off`) and one OpenOrders poller, its cross-check and stand-in (neither started)."""
    exporter = CapacityExporter(mode="serve", tier=config.kraken_tier)
    client = ReadOnlyKraken(credentials, config.kraken_url, timeout=config.kraken_timeout)
    names = resolve_or_explain(client, config.pair_list)
    stale = config.kraken_stale_after or default_stale_after(config.kraken_poll_interval, config.kraken_timeout)
    telemetries = []
    for pair in config.pair_list:
        telemetry = exporter.new_telemetry(pair, config.limit, config.safety_ratio, kraken_stale_after=stale)
        if pair in names:
            telemetry.set_pair_names(names[pair])
        telemetries.append(telemetry)
    source_metrics = KrakenSourceMetrics(exporter.registry)
    stream = None
    if config.kraken_stream:
        stream = KrakenStream(client, telemetries, StreamMetrics(exporter.registry), source_metrics,
                              url=config.kraken_ws_url, silence=config.kraken_stream_silence)
    for telemetry in telemetries:
        exporter.add_source(StandaloneSource(telemetry, events=stream))
    poller = KrakenOpenOrdersPoller(client, telemetries, source_metrics, interval=config.kraken_poll_interval,
                                    fallback=FALLBACK_BLIND, stream=stream)
    return exporter, poller


def serve_until_stopped(
    config: Config, exporter: CapacityExporter, worker: _Worker, stop: threading.Event,
    banner: str = "", duration: float | None = None, web: WebConfigFile | None = None,
) -> int:
    """Bind, start the background worker (poller, scraper or demo), and wait for SIGTERM/Ctrl-C (or `duration`)."""
    server = bind(config, exporter, web)
    if banner:
        print(banner, flush=True)
    worker.start()
    try:
        stop.wait(duration or None)
    finally:
        worker.stop()
        server.stop()
    return 0


def run_scrape(config: Config, stop: threading.Event, *, web: WebConfigFile | None = None) -> int:
    """Mirror one bot's /api/status block."""
    if len(config.pairs) > 1:
        raise ConfigError("--pair: scrape mirrors one bot's block; give one pair (or none to use the payload's)")
    exporter = CapacityExporter(mode="scrape")
    scraper = BotStatusScraper(config.status_url or "", ScrapeMetrics(exporter.registry),
                               pair=config.pairs[0] if config.pairs else None,
                               interval=config.scrape_interval, timeout=config.scrape_timeout,
                               stale_after=config.scrape_stale_after)
    exporter.add_source(scraper)
    return serve_until_stopped(config, exporter, scraper, stop, web=web)


COMMANDS: dict[str, Callable[..., int]] = {
    "demo": run_demo, "serve": run_serve, "scrape": run_scrape,
}


def main(argv: Sequence[str] | None = None, stop: threading.Event | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ROLLOUT_HELP:
        return run_rollout(argv[0], argv[1:])
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "demo")
    args = build_parser().parse_args(argv)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        config = load_config(args.command, args, os.environ)
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        web = load_web_config_file(config)  # loaded once, before anything starts: a bad file fails first
        return COMMANDS[args.command](config, stop, web=web)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
