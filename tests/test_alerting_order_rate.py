"""End to end with the shipped rules: `serve --kraken-tier starter` on the fake Kraken's REST side and WebSocket v2
stream -> real Prometheus -> real Alertmanager (issue 18).

A scripted burst of young cancels drives Kraken's order rate counter over 80% of a Starter threshold (60) and
KrakenBotOrderRateHigh warns; a scripted `EOrder:Rate limit exceeded` pages KrakenBotOrderRateLimited. The rules are
alerts/rules.yml with every `for:` in minutes read as seconds (tests.harness.fast_rules).
"""

import os
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import free_port, wait_for
from tests.harness import WebhookReceiver, fast_rules, start_alertmanager, start_prometheus
from tests.stream_rig import fake_kraken

pytestmark = pytest.mark.integration
KEY = "test-key-0001"


@pytest.fixture
def stack(tmp_path, kraken_secret):
    with fake_kraken(kraken_secret, 0.5, tier="starter") as (account, rest, stream):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRAKEN_", "EXPORTER_"))}
        env.update({"KRAKEN_API_URL": rest.url, "KRAKEN_WS_URL": stream.url, "KRAKEN_API_KEY": KEY,
                    "KRAKEN_API_SECRET": kraken_secret, "KRAKEN_TIER": "starter"})
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", "--pair", "XDGUSD", "--port", str(port),
             "--kraken-poll-interval", "0.5", "--kraken-timeout", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert "listening on" in proc.stdout.readline()
        receiver = WebhookReceiver()
        am = start_alertmanager(tmp_path, receiver.url)
        prom = start_prometheus(tmp_path, {"kraken-capacity-exporter": [f"127.0.0.1:{port}"]},
                                alertmanager=am.url.removeprefix("http://"), rules=fast_rules(tmp_path / "rules.yml"))
        yield account, prom, receiver, port
        prom.stop()
        am.stop()
        receiver.stop()
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        assert "Traceback" not in err, err


def notified(receiver, path, alertname, status):
    return [a for a in receiver.alerts(path) if a["labels"]["alertname"] == alertname and a["status"] == status]


def test_young_cancels_over_80_percent_of_a_starter_threshold_warn_and_a_rate_limit_refusal_pages(stack):
    account, prom, receiver, port = stack
    assert prom.wait_value('krakenbot_order_rate_threshold{pair="XDGUSD"}', 60) == 60  # the tier's
    assert prom.wait_value('krakenbot_exporter_info{tier="starter"}', 1) == 1
    assert prom.value('krakenbot_order_rate_level{pair="XDGUSD"}') == 0
    assert prom.value('krakenbot_open_orders_limit{pair="XDGUSD"}') == 60  # the tier's, with no --limit

    now = time.time()  # a grid re-placed in a hurry: 11 orders cancelled 1 s after they were placed
    for _ in range(11):
        txid = account.place("XDGUSD", 13, at=now)
        account.cancel(txid, at=now + 1.0)
    # 11 x (+1 placed, +8 cancelled within 5 s) less 1 s of decay at most: about 98 of 60, decaying 1 a second
    assert prom.wait_value('pair:krakenbot_order_rate_utilization_ratio:max{pair="XDGUSD"}', 1.0, timeout=30) == 1.0
    assert wait_for(lambda: notified(receiver, "/tickets", "KrakenBotOrderRateHigh", "firing"), timeout=45), \
        receiver.received
    assert not notified(receiver, "/pager", "KrakenBotOrderRateLimited", "firing")  # nothing was refused yet
    status = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()
    block = status["capacity_fill_health"]
    assert status["kraken_tier"] == "starter" and block["order_rate_threshold"] == 60
    assert block["order_rate_peak_1d"] >= 97 and block["order_rate_limited_1d"] == 0

    account.refuse("XDGUSD", 13)
    assert prom.wait_value('krakenbot_order_rate_limited_total{pair="XDGUSD"}', 1) == 1
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotOrderRateLimited", "firing"), timeout=45), \
        receiver.received
    alert = notified(receiver, "/pager", "KrakenBotOrderRateLimited", "firing")[0]
    assert alert["labels"]["pair"] == "XDGUSD" and alert["labels"]["severity"] == "critical"
    assert requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()[
        "capacity_fill_health"]["order_rate_limited_1d"] == 1
