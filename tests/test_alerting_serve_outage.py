"""End to end with the shipped rules: a `serve` process on the fake Kraken -> real Prometheus -> real Alertmanager.
(OpenOrders only, `--kraken-stream off`; tests/test_alerting_stream_outage.py has the stream.)

The pair is in stop (160 open orders under a safe cap of 168) when Kraken goes away: the stop page must not resolve
because the numbers vanished, the pair's blindness pages, the fallback warning reaches the tickets, and when Kraken
answers again with 50 open orders the stop page resolves. A key revoked mid-run pages as blind and names the key.
The rules are alerts/rules.yml with every `for:` in minutes read as seconds (tests.harness.fast_rules).
"""

import os
import subprocess
import sys

import pytest

from exporter.demo.fake_kraken import FakeKraken, order_info
from tests.conftest import free_port, wait_for
from tests.harness import WebhookReceiver, fast_rules, start_alertmanager, start_prometheus

pytestmark = pytest.mark.integration
KEY = "test-key-0001"


def orders(count):
    return {f"O{i:05d}-AAAAA-AAAAAA": order_info("XDGUSD") for i in range(count)}


@pytest.fixture
def kraken(kraken_secret):
    fake = FakeKraken(KEY, kraken_secret, open_orders=orders(160), slow_seconds=2.0)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def serve_port(kraken, kraken_secret):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRAKEN_", "EXPORTER_"))}
    env.update({"KRAKEN_API_URL": kraken.url, "KRAKEN_API_KEY": KEY, "KRAKEN_API_SECRET": kraken_secret})
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--pair", "XDGUSD", "--port", str(port),
         "--kraken-poll-interval", "0.5", "--kraken-timeout", "0.5", "--kraken-stream", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert "listening on" in proc.stdout.readline()
    yield port
    proc.terminate()
    _, err = proc.communicate(timeout=15)
    assert "Traceback" not in err, err


@pytest.fixture
def stack(tmp_path, serve_port):
    receiver = WebhookReceiver()
    am = start_alertmanager(tmp_path, receiver.url)
    prom = start_prometheus(tmp_path, {"kraken-capacity-exporter": [f"127.0.0.1:{serve_port}"]},
                            alertmanager=am.url.removeprefix("http://"), rules=fast_rules(tmp_path / "rules.yml"))
    yield prom, receiver
    prom.stop()
    am.stop()
    receiver.stop()


def notified(receiver, path, alertname, status):
    return [a for a in receiver.alerts(path) if a["labels"]["alertname"] == alertname
            and a["labels"].get("pair", "XDGUSD") == "XDGUSD" and a["status"] == status]


def firing_in_prometheus(prom, alertname):
    return prom.value(f'count(ALERTS{{alertname="{alertname}", alertstate="firing"}})') == 1


def test_a_kraken_outage_holds_the_stop_page_pages_blind_and_warns_until_kraken_answers(stack, kraken):
    prom, receiver = stack
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotStopBand", "firing"), timeout=40), receiver.received

    kraken.fail("EService:Unavailable")
    assert prom.wait_value('krakenbot_pair_blind{pair="XDGUSD"}', 1) == 1
    # the numbers are gone: no band at all
    assert wait_for(lambda: prom.value('pair:krakenbot_status_band:max{pair="XDGUSD"}') is None, timeout=20)
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotPairBlind", "firing"), timeout=40), receiver.received
    assert wait_for(lambda: notified(receiver, "/tickets", "KrakenBotKrakenDataUnavailable", "firing"), timeout=40)
    # ... and yet the stop page holds, saying why
    assert firing_in_prometheus(prom, "KrakenBotStopBand")
    assert not notified(receiver, "/pager", "KrakenBotStopBand", "resolved")
    held = [a for a in receiver.alerts("/pager") if a["labels"]["alertname"] == "KrakenBotStopBand"][-1]
    assert held["annotations"]["runbook_url"].endswith("#krakenbotstopband")

    kraken.set_open_orders(orders(50))
    kraken.heal()
    assert prom.wait_value('pair:krakenbot_status_band:max{pair="XDGUSD"}', 0) == 0
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotStopBand", "resolved"), timeout=40)
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotPairBlind", "resolved"), timeout=40)


def test_a_key_revoked_mid_run_pages_blind_and_names_the_key(stack, kraken):
    prom, receiver = stack
    assert prom.wait_value('krakenbot_pair_blind{pair="XDGUSD"}', 0) == 0
    kraken.revoke_key()
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotPairBlind", "firing"), timeout=40), receiver.received
    assert wait_for(lambda: notified(receiver, "/tickets", "KrakenBotKrakenKeyRejected", "firing"), timeout=40)
    rejected = notified(receiver, "/tickets", "KrakenBotKrakenKeyRejected", "firing")[0]
    assert "invalid_key or permission_denied" in rejected["annotations"]["description"]
