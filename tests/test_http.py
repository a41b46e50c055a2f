import json
import subprocess

import pytest
import requests

from exporter.web.app import create_app, start_server
from tests.conftest import require_binary

pytestmark = pytest.mark.integration


@pytest.fixture
def served(exporter):
    t = exporter.add_pair("XDGUSD")
    t.set_internal_counts(active_orders=1, recovery_orders=1, slot_count=1)
    exporter.add_pair("XBTUSD")
    server = start_server(create_app(exporter), "127.0.0.1", 0)
    yield server
    server.stop()


def get_once(exporter, *paths):
    """GET each path from a server started for the call and stopped after it; the replies, in order."""
    server = start_server(create_app(exporter))
    try:
        return [requests.get(f"{server.url}{path}", timeout=5) for path in paths]
    finally:
        server.stop()


def test_server_binds_loopback_by_default(exporter):
    server = start_server(create_app(exporter))
    try:
        assert server.host == "127.0.0.1"
    finally:
        server.stop()


def test_metrics_over_real_http_are_promtool_clean(served):
    promtool = require_binary("promtool")
    reply = requests.get(f"{served.url}/metrics", timeout=5)
    assert reply.status_code == 200
    assert 'krakenbot_open_orders_headroom{pair="XDGUSD"} 166.0' in reply.text
    check = subprocess.run([promtool, "check", "metrics"], input=reply.content, capture_output=True, timeout=30)
    findings = [line for line in (check.stdout + check.stderr).splitlines() if line.strip()]
    assert findings == [], check.stdout + check.stderr


def test_api_status_over_real_http_is_the_reference_bots_scenario(served):
    reply = requests.get(f"{served.url}/api/status", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    block = reply.json()["capacity_fill_health"]
    assert block["open_orders_source"] == "internal_fallback"
    assert (block["open_orders_internal"], block["open_orders_current"]) == (2, 2)
    assert (block["open_orders_safe_cap"], block["open_order_headroom"]) == (168, 166)
    assert "NaN" not in reply.text


def test_api_status_picks_a_pair_by_query(served):
    body = requests.get(f"{served.url}/api/status", params={"pair": "XBTUSD"}, timeout=5).json()
    assert body["pair"] == "XBTUSD"
    assert body["capacity_fill_health"]["open_orders_internal"] == 0
    assert set(body["capacity_fill_health_by_pair"]) == {"XDGUSD", "XBTUSD"}


def test_unknown_pair_is_a_404_with_a_json_error(served):
    reply = requests.get(f"{served.url}/api/status", params={"pair": "ETHUSD"}, timeout=5)
    assert reply.status_code == 404
    assert "ETHUSD" in reply.json()["error"]


def test_healthz_is_200_with_each_pairs_data_age_when_every_pair_has_data(served, exporter, clock):
    exporter.source("XDGUSD").observe_kraken_count(3)
    clock.advance(7)
    reply = requests.get(f"{served.url}/healthz", timeout=5)
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok" and set(body["pairs"]) == {"XDGUSD", "XBTUSD"}
    assert body["pairs"]["XDGUSD"]["kraken_data_age_seconds"] == 7.0
    assert body["pairs"]["XDGUSD"]["last_update_age_seconds"] == 7.0
    assert body["pairs"]["XDGUSD"]["kraken_data_available"] is True
    assert body["pairs"]["XBTUSD"]["kraken_data_available"] is False


def test_healthz_is_503_naming_each_pair_without_data_and_why(exporter):
    from exporter.core.reading import PairReading

    class Blind:  # a source with no data, as a scraped bot that is down reports it
        pair = "ETHUSD"

        def reading(self):
            return PairReading(pair="ETHUSD", health=None, blind=True, problem="scrape of http://bot failed: refused")

    class NoBlock:  # an older source that only leaves the block out
        pair = "SOLUSD"

        def reading(self):
            return PairReading(pair="SOLUSD", health=None, problem="no fresh Kraken open-order count")

    exporter.add_pair("XDGUSD")
    exporter.add_source(Blind())
    exporter.add_source(NoBlock())
    (reply,) = get_once(exporter, "/healthz")
    assert reply.status_code == 503
    body = reply.json()
    assert body["status"] == "blind" and body["blind"] == ["ETHUSD", "SOLUSD"]
    assert body["pairs"]["ETHUSD"]["reason"] == "scrape of http://bot failed: refused"
    assert body["pairs"]["SOLUSD"]["reason"] == "no fresh Kraken open-order count"
    assert body["pairs"]["XDGUSD"]["status"] == "ok"
    assert "ETHUSD: scrape of http://bot failed" in body["reason"]


def test_healthz_is_503_when_a_reading_is_blind_even_with_a_block(exporter):
    import dataclasses

    telemetry = exporter.add_pair("XDGUSD")
    exporter.remove_pair("XDGUSD")

    class Stuck:  # the core marks a pair blind when no hook ran within its stale limit, block or not
        pair = "XDGUSD"

        def reading(self):
            return dataclasses.replace(telemetry.reading(), blind=True, problem="no hook call for 301 s")

    exporter.add_source(Stuck())
    (reply,) = get_once(exporter, "/healthz")
    assert reply.status_code == 503
    assert reply.json()["pairs"]["XDGUSD"] == {
        "status": "blind", "kraken_data_available": False, "kraken_data_age_seconds": None,
        "last_update_age_seconds": None, "open_orders_source": "internal_fallback", "reason": "no hook call for 301 s"}


def test_healthz_is_503_with_no_pair_and_livez_is_200_while_serving(exporter):
    health, live = get_once(exporter, "/healthz", "/livez")
    assert health.status_code == 503 and health.json()["reason"] == "no pair is configured"
    assert live.status_code == 200 and live.json() == {"status": "alive"}


def test_the_server_is_read_only(served):
    reply = requests.post(f"{served.url}/api/status", data="x", timeout=5)
    assert reply.status_code == 405
    assert reply.headers["Allow"] == "GET, HEAD"
    assert json.loads(reply.text)["error"].startswith("read-only")


def test_healthz_of_a_serve_process_with_kraken_down_is_503_naming_the_pair(kraken_secret, tmp_path):
    import os
    import sys

    from tests.conftest import free_port, wait_for

    port = free_port()
    env = {**os.environ, "KRAKEN_API_KEY": "test-key-0001", "KRAKEN_API_SECRET": kraken_secret}
    args = [sys.executable, "-m", "exporter", "serve", "--port", str(port), "--pair", "XDGUSD",
            "--kraken-url", f"http://127.0.0.1:{free_port()}", "--kraken-poll-interval", "1", "--kraken-timeout", "1"]
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        replies = []

        def answered() -> bool:
            try:
                replies.append(requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2))
            except requests.RequestException:
                return False
            return True

        try:
            assert wait_for(answered, timeout=30, step=0.2), (tmp_path / "serve.log").read_text()
            live = requests.get(f"http://127.0.0.1:{port}/livez", timeout=2)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    health = replies[-1]
    assert health.status_code == 503 and live.status_code == 200
    body = health.json()
    assert body["blind"] == ["XDGUSD"] and body["pairs"]["XDGUSD"]["kraken_data_available"] is False
    assert body["pairs"]["XDGUSD"]["reason"]
