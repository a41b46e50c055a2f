"""`serve` with Kraken's executions stream, as a user runs it: the real command against the fake Kraken's REST side
and its WebSocket v2 endpoint."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from exporter.config import SETTINGS
from exporter.sources.kraken_api import READ_ONLY_PRIVATE, READ_ONLY_PUBLIC
from exporter.sources.kraken_stream import KrakenStream
from tests.conftest import free_port, wait_for
from tests.stream_rig import fake_kraken
from tests.test_config import default_of

KEY = "test-key-0001"


@pytest.fixture
def kraken(kraken_secret):
    with fake_kraken(kraken_secret, 0.2) as (account, rest, stream):
        yield account, rest, stream


def serve(kraken_secret, rest, stream, *extra):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRAKEN_", "EXPORTER_"))}
    env.update({"KRAKEN_API_URL": rest.url, "KRAKEN_WS_URL": stream.url, "KRAKEN_API_KEY": KEY,
                "KRAKEN_API_SECRET": kraken_secret})
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "serve", "--pair", "DOGE/USD,XBTUSD", "--port", str(port),
                             "--kraken-poll-interval", "0.5", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert "listening on" in proc.stdout.readline()
    return proc, f"http://127.0.0.1:{port}"


def stop(proc):
    proc.terminate()
    out, err = proc.communicate(timeout=20)
    assert "Traceback" not in err, err
    return out, err


def status(url):
    return requests.get(f"{url}/api/status", timeout=5).json()


@pytest.mark.integration
def test_serve_gives_the_whole_spec_from_the_stream_with_only_read_calls(kraken, kraken_secret):
    account, rest, stream = kraken
    a = account.place("XDGUSD", 13)
    account.place("XBTUSD", "0.01")
    proc, url = serve(kraken_secret, rest, stream)
    try:
        assert wait_for(lambda: (status(url)["capacity_fill_health"] or {}).get("events_source") == "kraken_stream",
                        timeout=20)
        account.trade(a, 5)
        account.cancel(a, reason="User requested")
        b = account.place("XDGUSD", 10)
        account.fill(b)
        assert wait_for(lambda: status(url)["capacity_fill_health"]["partial_fill_cancel_events_1d"] == 1
                        and status(url)["capacity_fill_health"]["open_orders_kraken"] == 0, timeout=20)
        block = status(url)["capacity_fill_health"]
        keys = list(block)
        assert keys[keys.index("open_orders_source") + 1] == "events_source"  # side by side
        assert (block["open_orders_source"], block["open_orders_kraken"]) == ("kraken", 0)
        assert (block["partial_fill_open_events_1d"], block["status_band"]) == (1, "stop")
        assert block["median_fill_seconds_1d"] is not None and block["median_fill_seconds_1d"] >= 0
        assert block["unknown_fields"] == ["open_orders_internal", "open_orders_drift", "orders_per_slot_estimate",
                                           "estimated_slots_remaining"]
        assert status(url)["capacity_fill_health_by_pair"]["XBTUSD"]["open_orders_kraken"] == 1
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert "krakenbot_kraken_stream_up 1.0" in metrics
        assert 'krakenbot_kraken_open_orders_reported{pair="XBTUSD",source="stream"} 1.0' in metrics
        assert wait_for(lambda: 'krakenbot_kraken_open_orders_reported{pair="XBTUSD",source="rest"} 1.0'
                        in requests.get(f"{url}/metrics", timeout=5).text, timeout=10)
    finally:
        out, err = stop(proc)
    assert "PHANTOM_POSITION_CANARY pair=XDGUSD" in err and 'reason="User requested"' in err
    assert kraken_secret not in out + err and stream.subscriptions >= 1
    allowed = {f"public/{m}" for m in READ_ONLY_PUBLIC} | {f"private/{m}" for m in READ_ONLY_PRIVATE}
    assert "private/GetWebSocketsToken" in rest.calls and set(rest.calls) <= allowed


@pytest.mark.integration
def test_with_the_stream_off_serve_never_asks_for_a_token(kraken, kraken_secret):
    account, rest, stream = kraken
    account.place("XDGUSD", 13)
    proc, url = serve(kraken_secret, rest, stream, "--kraken-stream", "off")
    try:
        assert wait_for(lambda: status(url)["capacity_fill_health"] is not None, timeout=20)
        block = status(url)["capacity_fill_health"]
        assert block["events_source"] is None and "partial_fill_open_events_1d" in block["unknown_fields"]
        assert "krakenbot_kraken_stream_up" not in requests.get(f"{url}/metrics", timeout=5).text
    finally:
        stop(proc)
    assert "private/GetWebSocketsToken" not in rest.calls and stream.connections == 0


@pytest.mark.parametrize(("args", "setting"), [
    (["--kraken-stream", "maybe"], "--kraken-stream"),
    (["--kraken-ws-url", "https://ws-auth.kraken.com/v2"], "--kraken-ws-url"),
    (["--kraken-stream-silence", "0"], "--kraken-stream-silence"),
])
def test_bad_stream_settings_are_one_line_and_exit_2(args, setting):
    result = subprocess.run([sys.executable, "-m", "exporter", "serve", *args], capture_output=True, text=True,
                            timeout=30, env={**os.environ, "KRAKEN_API_KEY": KEY, "KRAKEN_API_SECRET": "eA=="})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and setting in result.stderr


def test_the_stream_defaults_to_the_settings_table():
    by_name = {s.name: s for s in SETTINGS}
    assert default_of(KrakenStream, "url") == by_name["kraken_ws_url"].default == "wss://ws-auth.kraken.com/v2"
    assert default_of(KrakenStream, "silence") == by_name["kraken_stream_silence"].default == 30.0
    assert by_name["kraken_stream"].default is True
