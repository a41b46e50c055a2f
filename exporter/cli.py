"""The `kraken-capacity-exporter` command: `demo` (the default), and the data-source commands.

Every failure a user can cause (a bad setting, a port in use) ends in one line naming the setting and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import threading
from collections.abc import Callable, Sequence

from . import __version__
from .clock import AcceleratedClock
from .config import Config, ConfigError, add_arguments, load_config
from .demo import SimulatedBot, SimulatedExchange
from .http import RunningServer, create_app, start_server
from .service import CapacityExporter

PROG = "kraken-capacity-exporter"
COMMAND_HELP = {
    "demo": "simulated bot on an accelerated clock; no Kraken keys, no Docker (the default)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Read-only capacity and fill-health telemetry for Kraken grid bots.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    for name, text in COMMAND_HELP.items():
        add_arguments(sub.add_parser(name, help=text, description=text), name)
    return parser


def bind(config: Config, exporter: CapacityExporter, **routes: Callable) -> RunningServer:
    """Start the HTTP server, turning a taken port into a ConfigError that names the setting."""
    try:
        return start_server(create_app(exporter), config.host, config.port)
    except OSError as exc:
        raise ConfigError(f"--port/--host: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None


def announce(server: RunningServer) -> None:
    print(f"{PROG} {__version__} listening on {server.url}", flush=True)
    for path in ("/metrics", "/api/status", "/healthz"):
        print(f"  {server.url}{path}", flush=True)


def run_demo(config: Config, stop: threading.Event | None = None) -> int:
    """Run the simulated bot(s) and serve them until Ctrl-C, `stop`, or `config.duration` wall seconds."""
    stop = stop or threading.Event()
    clock = AcceleratedClock(config.speedup)
    exporter = CapacityExporter(clock=clock)
    rng = random.Random(config.seed)
    exchange = SimulatedExchange(rng)
    bots = []
    for pair in config.pairs:
        telemetry = exporter.add_pair(pair, config.limit, config.safety_ratio, kraken_stale_after=config.kraken_stale_after)
        bots.append(SimulatedBot(telemetry.pair, exchange, telemetry, clock, rng))
    server = bind(config, exporter)
    announce(server)
    print(f"  demo clock: {config.speedup:g}x (a simulated day every {86400 / config.speedup:.0f} s)", flush=True)
    tick_wall = min(1.0, max(0.05, 120.0 / config.speedup))  # about one bot poll (2 simulated minutes)
    deadline = None if not config.duration else clock.wall_seconds(0) + config.duration
    elapsed = 0.0
    try:
        while not stop.is_set() and (deadline is None or elapsed < deadline):
            for bot in bots:
                bot.tick()
            stop.wait(tick_wall)
            elapsed += tick_wall
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


COMMANDS: dict[str, Callable[[Config], int]] = {"demo": run_demo}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "demo")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.command, args, os.environ)
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return COMMANDS[args.command](config)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
