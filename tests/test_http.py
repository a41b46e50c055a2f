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
    assert check.returncode == 0 and check.stdout == b"", check.stdout + check.stderr


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


def test_healthz_answers_ok(served):
    body = requests.get(f"{served.url}/healthz", timeout=5).json()
    assert body["status"] == "ok" and body["pairs"] == ["XDGUSD", "XBTUSD"]


def test_the_server_is_read_only(served):
    reply = requests.post(f"{served.url}/api/status", data="x", timeout=5)
    assert reply.status_code == 405
    assert json.loads(reply.text)["error"].startswith("read-only")
