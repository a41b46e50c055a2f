"""Benchmarks of the hot paths: what a hook costs the bot's poll loop, and what a scrape or status read costs.

    python bench/bench_telemetry.py

Prints the median of several repeats for each case. Numbers depend on the machine; the README records a run.
"""

from __future__ import annotations

import logging
import statistics
import time
import timeit

from prometheus_client import generate_latest

from exporter import CapacityExporter, ManualClock
from exporter.web.status import status_payload

REPEATS = 7


def per_call(stmt, number: int) -> float:
    """Median seconds per call over REPEATS runs of `number` calls."""
    runs = timeit.repeat(stmt, number=number, repeat=REPEATS)
    return statistics.median(runs) / number


def loaded_exporter(pairs: int, fills_per_pair: int) -> tuple[CapacityExporter, ManualClock]:
    """An exporter whose 24h windows hold `fills_per_pair` fills and as many partial-opens per pair."""
    clock = ManualClock()
    exporter = CapacityExporter(clock=clock)
    names = ["XDGUSD", "XBTUSD", "ETHUSD", "SOLUSD", "ADAUSD", "DOTUSD", "LTCUSD", "XRPUSD", "LINKUSD", "ATOMUSD"]
    for pair in names[:pairs]:
        t = exporter.add_pair(pair)
        t.set_internal_counts(active_orders=150, recovery_orders=5, slot_count=70)
        t.observe_kraken_count(156)
        start = clock.now()
        for i in range(fills_per_pair):
            t.observe_order_status(f"{pair}-F{i}", "closed", "13", "13", placed_at=start - 60 - i % 5000)
            t.observe_order_status(f"{pair}-P{i}", "open", "13", "4")
    return exporter, clock


def main() -> None:
    exporter, clock = loaded_exporter(pairs=1, fills_per_pair=0)
    t = exporter.source("XDGUSD")
    counter = iter(range(10**9))
    now = clock.now()
    cases = {
        "observe_order_status, open unfilled (the common poll)": lambda: t.observe_order_status("OPEN1", "open", "13", "0"),
        "observe_order_status, new partial-open": lambda: t.observe_order_status(f"P{next(counter)}", "open", "13", "4"),
        "observe_order_status, closed with fill time": lambda: t.observe_order_status(
            f"C{next(counter)}", "closed", "13", "13", placed_at=now - 30),
        "observe_order_status, bad input (counted, logged once a minute)": lambda: t.observe_order_status(
            "BAD", "open", "abc", "1"),
        "set_internal_counts": lambda: t.set_internal_counts(active_orders=150, recovery_orders=5, slot_count=70),
    }
    logging.getLogger("kraken_capacity_exporter").setLevel(logging.ERROR)
    print(f"{'case':<70} {'per call':>12}")
    for name, fn in cases.items():
        print(f"{name:<70} {per_call(fn, 20_000) * 1e6:>9.2f} µs")

    rows = {"XDGUSD": {"status": "open", "descr": {"pair": "XDGUSD"}, "vol": "13", "vol_exec": "0"}}
    open_orders = {f"O{i}": rows["XDGUSD"] for i in range(225)}
    reply_cost = per_call(lambda: t.observe_kraken_open_orders(open_orders), 2_000)
    print(f"{'observe_kraken_open_orders, 225 rows':<70} {reply_cost * 1e6:>9.2f} µs")

    for pairs, fills in ((1, 1_000), (1, 10_000), (10, 10_000)):
        exporter, _ = loaded_exporter(pairs, fills)
        scrape = per_call(lambda: generate_latest(exporter.registry), 20)  # noqa: B023
        status = per_call(lambda: status_payload(exporter), 20)  # noqa: B023
        label = f"{pairs} pair(s), {fills} fills + {fills} partial-opens each in 24h"
        print(f"{'/metrics render, ' + label:<70} {scrape * 1e3:>9.2f} ms")
        print(f"{'/api/status payload, ' + label:<70} {status * 1e3:>9.2f} ms")

    started = time.perf_counter()
    loaded_exporter(1, 100_000)
    print(f"{'feed 100,000 fills + 100,000 partial-opens (one pair)':<70} {time.perf_counter() - started:>9.2f} s")


if __name__ == "__main__":
    main()
