"""The README is a contract: its example runs, its tables match what the code exports and reads."""

import re
from pathlib import Path
from types import SimpleNamespace

import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import SETTINGS

README = (Path(__file__).parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def table_first_column(text: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", text, flags=re.M)


def test_the_embedding_example_runs_against_a_bot_like_namespace():
    [code] = re.findall(r"```python\n(.*?)```", section("Embedding it in a bot"), flags=re.S)
    code = code.replace("9477", "0")
    bot = {
        "txid": "OUF4EM-FRGI2-MQMWZD",
        "row": {"status": "open", "vol": "1000.00000000", "vol_exec": "400.00000000"},
        "order": SimpleNamespace(placed_at=1_700_000_000.0),
        "active": [1, 2], "recovery": [3], "slots": [1],
        "open_orders_reply": {"error": [], "result": {"open": {
            "OUF4EM-FRGI2-MQMWZD": {"status": "open", "descr": {"pair": "XDGUSD"}, "vol": "1000", "vol_exec": "400"},
            "OTHER": {"status": "open", "descr": {"pair": "XBTUSD"}, "vol": "1", "vol_exec": "0"},
        }}},
        "status": {"mode": "RUNNING"},
    }
    namespace = dict(bot)
    exec(compile(code, "README.md", "exec"), namespace)
    try:
        status = namespace["status"]
        assert status["mode"] == "RUNNING"
        block = status["capacity_fill_health"]
        assert block["partial_fill_open_events_1d"] == 1
        assert (block["open_orders_internal"], block["open_orders_kraken"], block["open_orders_drift"]) == (3, 1, -2)
        served = requests.get(f"{namespace['server'].url}/api/status", timeout=5).json()
        assert served["capacity_fill_health"]["open_orders_kraken"] == 1
    finally:
        namespace["server"].stop()


def test_the_metric_table_lists_exactly_the_exported_metrics(exporter, registry, clock):
    t = exporter.add_pair("XDGUSD")
    t.set_internal_counts(active_orders=3, slot_count=1)
    t.observe_kraken_count(3)
    t.observe_order_status("C", "closed", "13", "13", placed_at=clock.now() - 5)
    families = text_string_to_metric_families(generate_latest(registry).decode())
    exported = {f.name for f in families if not f.name.endswith("_created")}  # prometheus-client's own
    standard = {name for name in exported if name.startswith(("process_", "python_"))}
    names = table_first_column(section("Metrics"))
    core = names[:names.index("krakenbot_kraken_requests_total")]
    process = names[names.index("krakenbot_exporter_info"):]
    rate_doc = (Path(__file__).parent.parent / "docs" / "order-rate.md").read_text()
    rate = table_first_column(rate_doc[rate_doc.index("## Metrics"):rate_doc.index("\n## ", rate_doc.index("## Metrics") + 1)])
    table = {name.removesuffix("_total") for name in core + process + rate}  # the rate counter's in docs/order-rate.md
    assert table == exported - standard
    assert {"process_start_time_seconds", "python_info"} <= standard


def test_the_source_metric_table_lists_the_poller_and_scraper_metrics(registry):
    from exporter.sources.kraken_poller import KrakenSourceMetrics
    from exporter.sources.kraken_stream import StreamMetrics
    from exporter.sources.status_scraper import ScrapeMetrics

    KrakenSourceMetrics(registry)
    StreamMetrics(registry)
    scrape = ScrapeMetrics(registry)
    scrape.up.labels(pair="XDGUSD").set(1)
    scrape.last_success.labels(pair="XDGUSD").set(1)
    scrape.errors.labels(pair="XDGUSD", reason="timeout")
    scrape.field_errors.labels(pair="XDGUSD", field="status_band")
    families = text_string_to_metric_families(generate_latest(registry).decode())
    exported = {f.name for f in families if not f.name.endswith("_created")}
    names = table_first_column(section("Metrics"))
    sources = names[names.index("krakenbot_kraken_requests_total"):names.index("krakenbot_exporter_info")]
    assert {name.removesuffix("_total") for name in sources} == exported


def test_the_config_table_lists_every_setting():
    rows = re.findall(r"^\| `(--[a-z-]+)` \| `([A-Z_]+)` \|", section("Configuration"), flags=re.M)
    assert rows == [(s.flag, s.env) for s in SETTINGS]
