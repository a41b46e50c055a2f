"""The demo: band changes on the terminal, and the spec's last integration test (the bot places and cancels the same
orders with and without telemetry attached)."""

import logging
import random
import subprocess
import sys

import pytest

from exporter import CapacityExporter, ManualClock
from exporter.core.capacity import BAND_CAUTION, BAND_NORMAL, BAND_STOP
from exporter.demo.run import BandChangeLog
from exporter.demo.simulation import SimulatedBot, SimulatedExchange
from tests.conftest import free_port


@pytest.fixture
def telemetry(exporter):
    return exporter.add_pair("XDGUSD", limit=225, safety_ratio=0.75)  # safe cap 168


def test_each_band_change_is_one_line_with_the_threshold_that_caused_it(telemetry, caplog):
    bands = BandChangeLog()
    caplog.set_level(logging.INFO)
    lines = []
    for internal in (100, 101, 150, 160, 100):
        telemetry.set_internal_counts(active_orders=internal, recovery_orders=0, slot_count=50)
        lines.append(bands.update("XDGUSD", telemetry.snapshot()))
    assert lines == [
        "XDGUSD: starts in normal (headroom 68 >= 20, no partial-cancel in 24h)",
        None,  # still normal: nothing to say
        "XDGUSD: normal → caution (headroom 18 < 20)",
        "XDGUSD: caution → stop (headroom 8 < 10)",
        "XDGUSD: stop → normal (headroom 68 >= 20, no partial-cancel in 24h)",
    ]
    assert [r.getMessage() for r in caplog.records] == [line for line in lines if line]


def test_a_partial_cancel_stop_names_the_canary(telemetry):
    bands = BandChangeLog()
    telemetry.set_internal_counts(active_orders=100, recovery_orders=0, slot_count=50)
    bands.update("XDGUSD", telemetry.snapshot())
    telemetry.observe_order_status("OUF4EM-FRGI2-MQMWZD", "canceled", "13", "5")
    assert bands.update("XDGUSD", telemetry.snapshot()) == "XDGUSD: normal → stop (1 partial-cancel in 24h > 0)"


@pytest.mark.integration
def test_the_demo_prints_band_changes_at_the_default_log_level():
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "demo", "--port", str(free_port()), "--speedup", "6000",
                             "--duration", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:  # ends when the demo ends (60 s at most)
            seen.append(line)
            if "XDGUSD: normal → caution (headroom " in line:
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert any("XDGUSD: starts in normal (headroom " in line for line in seen), seen
    assert "< 20)" in seen[-1], seen


# ---- the spec's last integration test ----------------------------------------------------------

def scripted_band(now: float, start: float) -> str:
    """The band a simulated operator scales by, on a fixed script: normal, caution, then long enough in stop
    for the half-day clean-up, then normal again."""
    hours = (now - start) / 3600
    if hours < 10:
        return BAND_NORMAL
    if hours < 16:
        return BAND_CAUTION
    if hours < 30:
        return BAND_STOP
    return BAND_NORMAL


def run_bot_cycle(with_telemetry: bool) -> tuple[list, CapacityExporter]:
    clock = ManualClock(start=1_700_000_000.0)
    exporter = CapacityExporter(clock=clock)
    telemetry = exporter.add_pair("XDGUSD") if with_telemetry else None
    rng = random.Random(7)
    exchange = SimulatedExchange(rng)
    start = clock.now()
    bot = SimulatedBot("XDGUSD", exchange, telemetry, clock, rng, canary_every_hours=12,
                       band_of=lambda now: scripted_band(now, start))
    for _ in range(int(2 * 86_400 / 120)):  # two simulated days, a tick per 2 simulated minutes
        clock.advance(120)
        bot.tick()
    return exchange.history, exporter


def test_a_bot_cycle_places_and_cancels_exactly_the_same_orders_with_and_without_telemetry():
    with_telemetry, exporter = run_bot_cycle(with_telemetry=True)
    without, _ = run_bot_cycle(with_telemetry=False)
    assert with_telemetry == without
    # the cycle exercised every path: entries, slot additions, fills, recoveries, canaries and the clean-up
    placed = [h for h in with_telemetry if h[0] == "place"]
    removed = {why: sum(1 for h in with_telemetry if h[0] == "remove" and h[2] == why) for why in ("closed", "canceled")}
    assert len({h[3] for h in placed}) > 58  # slots were added beyond the 58 the bot starts with
    assert {h[4] for h in placed} == {"entry", "recovery"}
    assert removed["closed"] > 100 and removed["canceled"] > 10
    # and the telemetry attached to the first run really watched it
    snap = exporter.source("XDGUSD").snapshot()
    assert snap.partial_fill_cancel_events_1d >= 1 and snap.median_fill_seconds_1d is not None


def test_without_a_band_source_the_simulated_operator_cannot_run():
    rng = random.Random(7)
    with pytest.raises(ValueError, match="band_of"):
        SimulatedBot("XDGUSD", SimulatedExchange(rng), None, ManualClock(), rng)
