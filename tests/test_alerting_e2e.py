"""End to end: exporters -> real Prometheus (shipped rules) -> real Alertmanager -> a webhook receiver.

Two bots on one pair (same Kraken account) are scraped, driven through normal, caution and stop; at each step the
band Prometheus computes equals the band /api/status reports, the aggregation across bots is right, and the stop
band reaches the pager receiver for that pair. The PromQL cookbook of docs/dashboards.md runs here too.
"""

import re
import runpy
from pathlib import Path

import pytest
import requests

from exporter import CapacityExporter
from exporter.web.app import create_app, start_server
from tests.conftest import wait_for
from tests.harness import WebhookReceiver, fast_rules, start_alertmanager, start_prometheus

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = (ROOT / "docs" / "dashboards.md").read_text()
RUNBOOK_BASE = runpy.run_path(str(ROOT / "alerts" / "generate.py"))["committed_base"]()
BAND = {"normal": 0, "caution": 1, "stop": 2}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    bots = {}
    for name in ("a", "b"):
        exporter = CapacityExporter()
        telemetry = exporter.add_pair("XDGUSD", limit=225, safety_ratio=0.75)
        bots[name] = (exporter, telemetry, start_server(create_app(exporter)))
    receiver = WebhookReceiver()
    am = start_alertmanager(tmp, receiver.url)
    targets = [f"127.0.0.1:{server.port}|bot={name}" for name, (_, _, server) in bots.items()]
    prom = start_prometheus(tmp, {"kraken-capacity-exporter": targets}, alertmanager=am.url.removeprefix("http://"),
                            rules=fast_rules(tmp / "rules.yml"))
    yield {"bots": bots, "prom": prom, "am": am, "receiver": receiver}
    prom.stop()
    am.stop()
    receiver.stop()
    for _, _, server in bots.values():
        server.stop()


def native_band(stack):
    _, _, server = stack["bots"]["a"]
    return requests.get(f"{server.url}/api/status", timeout=5).json()["capacity_fill_health"]["status_band"]


def feed(stack, kraken, internal_a, internal_b, slots_a, slots_b):
    (_, a, _), (_, b, _) = stack["bots"]["a"], stack["bots"]["b"]
    a.set_internal_counts(active_orders=internal_a, recovery_orders=0, slot_count=slots_a)
    b.set_internal_counts(active_orders=internal_b, recovery_orders=0, slot_count=slots_b)
    for t in (a, b):
        if kraken is None:
            t.observe_kraken_unavailable()
        else:
            t.observe_kraken_count(kraken)


def assert_bands_agree(stack, expected):
    prom = stack["prom"]
    assert native_band(stack) == expected
    got = prom.wait_value('pair:krakenbot_status_band_computed:max{pair="XDGUSD"}', BAND[expected])
    assert got == BAND[expected], f"rules' band {got}, /api/status says {expected}"


def test_bands_agree_and_stop_pages_the_pair(stack):
    prom, receiver = stack["prom"], stack["receiver"]
    # normal: the account has 100 open orders for the pair; the two bots track 60 and 40 of them
    feed(stack, kraken=100, internal_a=60, internal_b=40, slots_a=30, slots_b=20)
    assert wait_for(lambda: prom.value('count(up{job="kraken-capacity-exporter"} == 1)') == 2, timeout=30)
    assert_bands_agree(stack, "normal")
    assert prom.wait_value('pair:krakenbot_open_orders_current:max_or_sum{pair="XDGUSD"}', 100) == 100
    assert prom.wait_value('pair:krakenbot_slots:sum{pair="XDGUSD"}', 50) == 50
    # caution: headroom 13
    feed(stack, kraken=155, internal_a=90, internal_b=65, slots_a=45, slots_b=32)
    assert_bands_agree(stack, "caution")
    # without Kraken, the bots' internal counts add up at account level: 90 + 65 = 155, still caution there,
    # while each bot alone sees only its own 90 or 65 (normal): the account-level band is the one that pages
    feed(stack, kraken=None, internal_a=90, internal_b=65, slots_a=45, slots_b=32)
    assert prom.wait_value('pair:krakenbot_open_orders_current:max_or_sum{pair="XDGUSD"}', 155) == 155
    assert prom.wait_value('pair:krakenbot_status_band_computed:max{pair="XDGUSD"}', 1) == 1
    assert native_band(stack) == "normal"
    feed(stack, kraken=155, internal_a=90, internal_b=65, slots_a=45, slots_b=32)
    assert_bands_agree(stack, "caution")
    # stop: a partial fill canceled on bot a, counter already scraped at 0
    assert wait_for(lambda: prom.value('krakenbot_partial_fill_cancel_events_total{bot="a"}') == 0, timeout=20)
    _, a, _ = stack["bots"]["a"]
    a.observe_order_status("OUF4EM-FRGI2-MQMWZD", "open", "13", "5")
    a.observe_order_status("OUF4EM-FRGI2-MQMWZD", "canceled", "13", "5")
    assert_bands_agree(stack, "stop")
    assert wait_for(lambda: any(
        alert["labels"]["alertname"] == "KrakenBotStopBand" and alert["labels"]["pair"] == "XDGUSD"
        and alert["status"] == "firing" for alert in receiver.alerts("/pager")), timeout=40), receiver.received
    page = next(a for a in receiver.alerts("/pager") if a["labels"]["alertname"] == "KrakenBotStopBand")
    assert page["labels"]["severity"] == "critical"
    assert "partial-cancels in 24h: 1" in page["annotations"]["description"]
    assert page["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}#krakenbotstopband"
    assert wait_for(lambda: any(a["labels"]["alertname"] == "KrakenBotPartialCancelCanary"
                                for a in receiver.alerts("/pager")), timeout=30)
    # caution went to tickets at most before stop; stop inhibits it for the same pair from then on
    assert not any(a["labels"]["alertname"] == "KrakenBotStopBand" for a in receiver.alerts("/tickets"))


def cookbook_queries():
    section = DASHBOARDS[DASHBOARDS.index("## PromQL cookbook"):]
    end = section.find("\n## ", 5)
    section = section if end == -1 else section[:end]
    return re.findall(r"```promql\n(.*?)```", section, flags=re.S)


def test_the_docs_cookbook_has_queries():
    assert len(cookbook_queries()) >= 6


@pytest.fixture(scope="module")
def cookbook_data(stack):
    """Fills, drift and a caution spell, scraped at least once, whatever ran before."""
    import time

    _, a, _ = stack["bots"]["a"]
    now = time.time()
    for i, age in enumerate((30, 45, 90, 600, 4000)):
        a.observe_order_status(f"OFILL{i}-AAAAA-AAAAAA", "closed", "13", "13", placed_at=now - age)
    feed(stack, kraken=155, internal_a=90, internal_b=60, slots_a=45, slots_b=30)
    prom = stack["prom"]
    assert wait_for(lambda: prom.value('sum(krakenbot_fill_duration_seconds_count{bot="a"})') == 5
                    and prom.value('pair:krakenbot_open_orders_drift:max{pair="XDGUSD"}') == 95, timeout=30)
    return stack


@pytest.mark.parametrize("query", [q.strip() for q in cookbook_queries()])
def test_every_cookbook_query_runs_against_real_prometheus(cookbook_data, query):
    prom = cookbook_data["prom"]
    prom.query(query)  # parses and runs, or raises
    if "offset" in query:
        return  # last week's data cannot exist in a test

    def answered():
        result = prom.query(query)
        return bool(result) and all(r["value"][1] != "NaN" for r in result)

    # subqueries ([…:15s]) need data across a 15 s boundary, and rules a second to record: poll for it
    assert wait_for(answered, timeout=40), f"{query!r} gave {prom.query(query)}"
