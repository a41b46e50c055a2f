"""End to end with the shipped rules: `serve` on the fake Kraken's REST side and WebSocket v2 stream -> real Prometheus ->
real Alertmanager.

Kraken goes away entirely (REST answers `EService:Unavailable`, the stream drops and gets no token): the pair pages
blind and the stream-down ticket comes. While it is away an order is placed, partly filled and canceled — no
snapshot will ever list it. Kraken comes back: blind and stream-down resolve, and the partial-cancel that happened in
the dark still pages (`ClosedOrders` since the gap tells it), its canary in the log with Kraken's reason. The rules
are alerts/rules.yml with every `for:` in minutes read as seconds (tests.harness.fast_rules).
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import free_port, wait_for
from tests.harness import WebhookReceiver, fast_rules, start_alertmanager, start_prometheus
from tests.stream_rig import fake_kraken

pytestmark = pytest.mark.integration
KEY = "test-key-0001"


@pytest.fixture
def kraken(kraken_secret):
    with fake_kraken(kraken_secret, 0.5, slow_seconds=2.0) as (account, rest, stream):
        for _ in range(40):
            account.place("XDGUSD", 13)
        yield account, rest, stream


@pytest.fixture
def serve(kraken, kraken_secret):
    _, rest, stream = kraken
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRAKEN_", "EXPORTER_"))}
    env.update({"KRAKEN_API_URL": rest.url, "KRAKEN_WS_URL": stream.url, "KRAKEN_API_KEY": KEY,
                "KRAKEN_API_SECRET": kraken_secret})
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--pair", "XDGUSD", "--port", str(port),
         "--kraken-poll-interval", "0.5", "--kraken-timeout", "0.5", "--kraken-stream-silence", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert "listening on" in proc.stdout.readline()
    yield port, proc
    if proc.poll() is None:  # the test ends it itself to read its log; this is for a test that failed first
        proc.terminate()
        proc.communicate(timeout=20)


@pytest.fixture
def stack(tmp_path, serve):
    port, proc = serve
    receiver = WebhookReceiver()
    am = start_alertmanager(tmp_path, receiver.url)
    prom = start_prometheus(tmp_path, {"kraken-capacity-exporter": [f"127.0.0.1:{port}"]},
                            alertmanager=am.url.removeprefix("http://"), rules=fast_rules(tmp_path / "rules.yml"))
    yield prom, receiver, proc
    prom.stop()
    am.stop()
    receiver.stop()


def notified(receiver, path, alertname, status):
    return [a for a in receiver.alerts(path) if a["labels"]["alertname"] == alertname and a["status"] == status]


def test_a_long_kraken_outage_pages_blind_and_a_partial_cancel_in_the_dark_still_pages_when_it_is_back(stack, kraken):
    prom, receiver, proc = stack
    account, rest, stream = kraken
    assert prom.wait_value("krakenbot_kraken_stream_up", 1) == 1
    assert prom.wait_value('krakenbot_open_orders_kraken{pair="XDGUSD"}', 40) == 40
    assert prom.value('krakenbot_partial_fill_cancel_events_total{pair="XDGUSD"}') == 0

    rest.fail("EService:Unavailable")
    stream.disconnect()
    assert prom.wait_value('krakenbot_pair_blind{pair="XDGUSD"}', 1) == 1
    assert prom.wait_value("krakenbot_kraken_stream_up", 0) == 0
    dark = account.place("XDGUSD", 13)
    account.trade(dark, 6)
    account.cancel(dark, reason="User requested")
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotPairBlind", "firing"), timeout=60), receiver.received
    assert wait_for(lambda: notified(receiver, "/tickets", "KrakenBotKrakenStreamDown", "firing"), timeout=60)
    assert not notified(receiver, "/pager", "KrakenBotPartialCancelCanary", "firing")  # nobody could see it yet

    rest.heal()
    assert prom.wait_value("krakenbot_kraken_stream_up", 1, timeout=90) == 1
    assert prom.wait_value('krakenbot_partial_fill_cancel_events_total{pair="XDGUSD"}', 1) == 1
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotPartialCancelCanary", "firing"), timeout=60)
    assert wait_for(lambda: notified(receiver, "/pager", "KrakenBotPairBlind", "resolved"), timeout=60)
    assert wait_for(lambda: notified(receiver, "/tickets", "KrakenBotKrakenStreamDown", "resolved"), timeout=60)
    assert prom.value('krakenbot_open_orders_kraken{pair="XDGUSD"}') == 40
    assert prom.value('krakenbot_kraken_stream_reconnects_total{reason="disconnect"}') >= 1
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    assert "Traceback" not in err, err
    assert f"PHANTOM_POSITION_CANARY pair=XDGUSD txid={dark} status=canceled vol_exec=6.00000000" in err
    assert 'reason="User requested"' in err
