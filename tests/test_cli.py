import math
import random
import socket
import subprocess
import sys

import pytest
import requests

from exporter import CapacityExporter, ManualClock
from exporter.config import ConfigError, load_config
from exporter.core.capacity import classify_band
from exporter.demo.simulation import SimulatedBot, SimulatedExchange
from tests.conftest import free_port
from tests.test_status import check_block


def run_cli(*args, env=None, timeout=30):
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["--safety-ratio", "1.5"], "--safety-ratio"),
        (["--safety-ratio", "0"], "--safety-ratio"),
        (["--limit", "-5"], "--limit"),
        (["--limit", "many"], "--limit"),
        (["--pair", "DOGE/USD/EUR"], "--pair"),
        (["--pair", "DOGE/USD,XDGUSD"], "--pair"),
        (["--pair", "xdgusd,XDGUSD"], "--pair"),
        (["--port", "70000"], "--port"),
        (["--log-level", "LOUD"], "--log-level"),
    ],
)
def test_bad_config_is_one_line_naming_the_setting_and_a_nonzero_exit(args, setting):
    result = run_cli("demo", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="OPEN_ORDER_SAFETY_RATIO"):
        load_config("demo", None, {"OPEN_ORDER_SAFETY_RATIO": "2"})


def test_flags_win_over_environment_over_defaults():
    import argparse

    env = {"KRAKEN_OPEN_ORDERS_PER_PAIR_LIMIT": "80", "EXPORTER_PORT": "9999"}
    config = load_config("demo", argparse.Namespace(limit="60"), env)
    assert (config.limit, config.port, config.safety_ratio, config.host) == (60, 9999, 0.75, "127.0.0.1")


@pytest.mark.integration
def test_a_port_in_use_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("demo", "--port", str(port), "--duration", "1")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--port" in result.stderr


def simulated_bot():
    """The demo's bot on a manual clock, seeded as the demo is by default."""
    clock = ManualClock()
    rng = random.Random(7)
    telemetry = CapacityExporter(clock=clock).add_pair("XDGUSD")
    return clock, telemetry, SimulatedBot("XDGUSD", SimulatedExchange(rng), telemetry, clock, rng)


def test_demo_passes_through_two_bands_within_a_minute_of_wall_time():
    clock, telemetry, bot = simulated_bot()
    bands = set()
    for _ in range(300):  # 300 ticks of 2 simulated minutes: 10 simulated hours = 60 s at the default 600x
        clock.advance(120)
        bot.tick()
        bands.add(telemetry.snapshot().status_band)
    assert len(bands) >= 2, bands


def assert_consistent_with_the_spec(s):
    assert s.open_orders_current == (s.open_orders_kraken if s.open_orders_kraken is not None else s.open_orders_internal)
    assert s.open_orders_safe_cap == math.floor(225 * 0.75)
    assert s.open_order_headroom == s.open_orders_safe_cap - s.open_orders_current
    assert s.open_order_utilization_pct == pytest.approx(s.open_orders_current / s.open_orders_safe_cap * 100)
    assert s.status_band == classify_band(s.open_order_headroom, s.partial_fill_cancel_events_1d)


def test_demo_moves_every_counter_within_a_few_simulated_days():
    clock, telemetry, bot = simulated_bot()
    seen = {"stop": False, "partial_open": False, "partial_cancel": False, "drift": False}
    for _ in range(720 * 4):
        clock.advance(120)
        bot.tick()
        s = telemetry.snapshot()
        seen["stop"] |= s.status_band == "stop"
        seen["partial_open"] |= s.partial_fill_open_events_1d > 0
        seen["partial_cancel"] |= s.partial_fill_cancel_events_1d > 0
        seen["drift"] |= bool(s.open_orders_drift)
        assert_consistent_with_the_spec(s)
    assert all(seen.values()), seen


@pytest.mark.integration
def test_demo_command_serves_all_fields_over_http():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "demo", "--port", str(port), "--duration", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in proc.stdout.readline()
        banner = [proc.stdout.readline().strip() for _ in range(5)]  # every route an operator opens, each served
        assert banner == [f"http://127.0.0.1:{port}{p}" for p in ("/metrics", "/api/status", "/healthz", "/", "/runbooks")]
        assert all(requests.get(url, timeout=5).status_code == 200 for url in banner)
        body = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()
        check_block(body["capacity_fill_health"])
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'krakenbot_open_orders_current{pair="XDGUSD"}' in metrics
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("command", ["demo", "serve", "scrape"])
def test_each_command_help_mentions_only_what_applies_to_that_command(command):
    import re

    from exporter.cli import build_parser

    sub = next(a for a in build_parser()._subparsers._group_actions if a.choices)  # the commands
    text = " ".join(sub.choices[command].format_help().split())
    others = [c for c in ("demo", "serve", "scrape") if c != command]
    assert [c for c in others if re.search(rf"\b{c}:", text)] == []
    if command == "scrape":
        assert "default XDGUSD" not in text  # scrape takes the pair from the bot's payload
    if command != "serve":
        assert "poll interval" not in text
