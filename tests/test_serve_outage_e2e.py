"""End to end: a `serve` process against the fake Kraken -> real Prometheus -> real Alertmanager -> a webhook.

A Kraken outage (and then a key revoked mid-run) leaves the pair without a fresh count: the exporter keeps the pair
in /metrics with `krakenbot_pair_blind 1`, the blindness alert fires, and the page reaches the pager receiver;
when Kraken answers again the page resolves.

The alert rule is written here with the expression and severity of `KrakenBotPairBlind` in alerts/rules.yml and a
short `for`, so that this test checks the exporter's side on its own.
"""

import os
import subprocess
import sys

import pytest
import requests
import yaml

from tests.conftest import free_port, wait_for
from tests.harness import WebhookReceiver, start_alertmanager, start_prometheus

pytestmark = pytest.mark.integration

BLIND_RULE = {
    "alert": "KrakenBotPairBlind",
    "expr": "krakenbot_pair_blind == 1",
    "for": "3s",
    "labels": {"severity": "critical"},
    "annotations": {"summary": "{{ $labels.pair }}: no usable data, the stop signal is gone",
                    "description": "The exporter has had no usable data for {{ $labels.pair }}."},
}


def write_rules(path):
    path.write_text(yaml.safe_dump({"groups": [{"name": "blind", "rules": [BLIND_RULE]}]}))
    return path


@pytest.fixture
def serve_process(fake_kraken, kraken_secret):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRAKEN_", "EXPORTER_"))}
    env.update({"KRAKEN_API_URL": fake_kraken.url, "KRAKEN_API_KEY": "test-key-0001", "KRAKEN_API_SECRET": kraken_secret})
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--pair", "XDGUSD", "--port", str(port),
         "--kraken-poll-interval", "0.5", "--kraken-timeout", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert "listening on" in proc.stdout.readline()
    yield port
    proc.terminate()
    _, err = proc.communicate(timeout=15)
    assert "Traceback" not in err, err


@pytest.fixture
def stack(tmp_path, serve_process):
    receiver = WebhookReceiver()
    am = start_alertmanager(tmp_path, receiver.url)
    prom = start_prometheus(tmp_path, {"kraken-capacity-exporter": [f"127.0.0.1:{serve_process}"]},
                            alertmanager=am.url.removeprefix("http://"), rules=write_rules(tmp_path / "rules.yml"))
    yield prom, receiver
    prom.stop()
    am.stop()
    receiver.stop()


def pages(receiver, status):
    return [a for a in receiver.alerts("/pager")
            if a["labels"]["alertname"] == "KrakenBotPairBlind" and a["labels"].get("pair") == "XDGUSD"
            and a["status"] == status]


def test_a_kraken_outage_in_serve_mode_pages_and_the_page_resolves_when_kraken_answers(stack, fake_kraken, serve_process):
    prom, receiver = stack
    # healthy first: the pair is scraped, seen, and not blind
    assert prom.wait_value('krakenbot_pair_blind{pair="XDGUSD"}', 0) == 0
    assert prom.value('krakenbot_kraken_data_available{pair="XDGUSD"}') == 1
    assert not pages(receiver, "firing")

    fake_kraken.fail("EService:Unavailable")
    assert prom.wait_value('krakenbot_pair_blind{pair="XDGUSD"}', 1) == 1
    # blind is a state, not silence: the exporter is up and the pair's series are there, saying 0
    assert prom.value('up{job="kraken-capacity-exporter"}') == 1
    assert prom.value('krakenbot_kraken_data_available{pair="XDGUSD"}') == 0
    assert prom.value("krakenbot_kraken_up") == 0
    assert wait_for(lambda: pages(receiver, "firing"), timeout=40), receiver.received
    page = pages(receiver, "firing")[0]
    assert page["labels"]["severity"] == "critical"
    assert page["annotations"]["summary"] == "XDGUSD: no usable data, the stop signal is gone"
    status = requests.get(f"http://127.0.0.1:{serve_process}/api/status", timeout=5).json()
    assert "no fresh Kraken" in status["problems"]["XDGUSD"]

    fake_kraken.heal()
    assert prom.wait_value('krakenbot_pair_blind{pair="XDGUSD"}', 0) == 0
    assert wait_for(lambda: pages(receiver, "resolved"), timeout=40), receiver.received


def test_a_key_revoked_mid_run_in_serve_mode_pages(stack, fake_kraken):
    prom, receiver = stack
    assert prom.wait_value('krakenbot_pair_blind{pair="XDGUSD"}', 0) == 0
    fake_kraken.revoke_key()
    assert wait_for(lambda: pages(receiver, "firing"), timeout=40), receiver.received
    assert prom.value('krakenbot_kraken_requests_total{endpoint="OpenOrders",result="invalid_key"}') > 0
