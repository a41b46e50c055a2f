"""A fleet's worth of pairs: `hosts` exporters of `pairs_per_host` simulated bots each, the demo's simulation on an
accelerated clock, all in this one process so that it stays bounded on a 2-core machine.

Each host is what an operator runs per machine: one `CapacityExporter` with its own HTTP server on 127.0.0.1 (a
Prometheus target of its own) and its own simulated Kraken account; each pair is a `SimulatedBot` that calls the real
hooks (and feeds Kraken's count, as an embedding bot does). One thread ticks every bot once per simulated bot poll.
Bots start with different slot counts, so the fleet holds pairs in every band.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from exporter import AcceleratedClock, CapacityExporter
from exporter.demo.simulation import SimulatedBot, SimulatedExchange
from exporter.web.app import create_app, start_server


@dataclass
class Host:
    exporter: CapacityExporter
    server: object
    bots: list[SimulatedBot] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"  # type: ignore[attr-defined]


class Fleet:
    POLL_SIMULATED_SECONDS = 120.0  # the demo's bot poll

    def __init__(self, hosts: int = 20, pairs_per_host: int = 10, speedup: float = 240.0, seed: int = 19) -> None:
        self.clock = AcceleratedClock(speedup)
        self.tick_wall_seconds = self.POLL_SIMULATED_SECONDS / speedup
        rng = random.Random(seed)
        self.hosts: list[Host] = []
        self._stop = threading.Event()
        try:
            for h in range(hosts):
                exporter = CapacityExporter(clock=self.clock, mode="demo")
                exchange = SimulatedExchange(rng)
                host = Host(exporter, start_server(create_app(exporter)))
                self.hosts.append(host)
                for p in range(pairs_per_host):
                    i = h * pairs_per_host + p
                    telemetry = exporter.add_pair(self.pair(i), kraken_stale_after=10 * self.POLL_SIMULATED_SECONDS)
                    # 48..83 slots: 96..166 orders against the safe cap of 168, so every band is in the fleet
                    host.bots.append(SimulatedBot(self.pair(i), exchange, telemetry, self.clock, rng,
                                                  start_slots=48 + (i * 7) % 36))
        except BaseException:
            self.stop()
            raise
        self.pairs = [bot.pair for host in self.hosts for bot in host.bots]
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)

    @staticmethod
    def pair(i: int) -> str:
        return f"P{i:03d}USD"

    def start(self) -> None:
        for host in self.hosts:
            for bot in host.bots:
                bot.tick()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_wall_seconds):
            for host in self.hosts:
                for bot in host.bots:
                    bot.tick()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for host in self.hosts:
            host.server.stop()  # type: ignore[attr-defined]
