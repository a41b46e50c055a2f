"""The "Capacity & Fill Health" dashboard: generated from code, structurally sound, and every panel query
answered by a real Prometheus that scraped a real exporter in a scripted scenario."""

import json
import math
import re
import runpy
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import CapacityExporter, ManualClock
from exporter.core import thresholds as t
from exporter.core.capacity import BAND_VALUE
from exporter.web.app import create_app, start_server
from tests.conftest import wait_for
from tests.harness import fast_rules, start_prometheus

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = json.loads((ROOT / "grafana" / "dashboards" / "capacity-fill-health.json").read_text())
PANELS = {p["title"]: p for p in DASHBOARD["panels"]}


def targets():
    return [(panel["title"], t) for panel in DASHBOARD["panels"] for t in panel["targets"]]


def test_the_committed_json_is_what_the_generator_makes():
    generator = runpy.run_path(str(ROOT / "grafana" / "generate.py"))
    assert generator["render"]() == (ROOT / "grafana" / "dashboards" / "capacity-fill-health.json").read_text()


def test_dashboard_has_a_stable_uid_a_datasource_variable_and_job_instance_and_pair_variables():
    assert DASHBOARD["uid"] == "krakenbot-capacity-fill-health"
    assert DASHBOARD["title"] == "Capacity & Fill Health"
    assert DASHBOARD["schemaVersion"] == 41
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance", "pair"]
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["query"] == "label_values(krakenbot_pair_blind, job)"
    assert variables["instance"]["query"] == 'label_values(krakenbot_pair_blind{job=~"$job"}, instance)'
    pair = variables["pair"]
    assert pair["query"] == 'label_values(krakenbot_pair_blind{job=~"$job", instance=~"$instance"}, pair)'
    for name in ("job", "instance", "pair"):
        assert variables[name]["multi"] is True and variables[name]["includeAll"] is True
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_panel_and_target_uses_the_datasource_variable_and_has_a_ref_id():
    for title, target in targets():
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert target["refId"], title
        assert 'pair=~"$pair"' in target["expr"], title
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


def test_the_panels_the_issues_ask_for_are_there():
    assert {"Band", "Why (risk hints)", "Utilization of the safe cap", "Open orders / safe cap", "Headroom and runway",
            "Open-order source", "Data", "Partial fills, 24h", "Kraken vs internal open orders",
            "Drift (Kraken - internal)", "Headroom and its 24h forecast", "Time to the stop band",
            "Fill time, median and p95 over 24h", "Fill time distribution", "Band history",
            "Firing alerts", "Order rate counter vs threshold", "Order rate peak, 24h",
            "Rate-limit rejections, 24h"} == set(PANELS)
    assert PANELS["Band"]["type"] == "stat" and PANELS["Band history"]["type"] == "state-timeline"
    assert PANELS["Fill time distribution"]["type"] == "heatmap"
    assert PANELS["Utilization of the safe cap"]["type"] == "gauge"
    assert "krakenbot_forecast_seconds_to_stop_band" in PANELS["Time to the stop band"]["targets"][0]["expr"]
    assert PANELS["Time to the stop band"]["fieldConfig"]["defaults"]["unit"] == "s"
    mapping = PANELS["Band"]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {k: v["text"] for k, v in mapping.items()} == {"0": "NORMAL", "1": "CAUTION", "2": "STOP"}
    assert {k: v["color"] for k, v in mapping.items()} == {"0": "green", "1": "orange", "2": "red"}


def test_the_order_rate_row_shows_the_counter_against_its_threshold_the_peak_and_the_rejections():
    counter = PANELS["Order rate counter vs threshold"]["targets"]
    assert "krakenbot_order_rate_level" in counter[0]["expr"] and "krakenbot_order_rate_threshold" in counter[1]["expr"]
    assert "krakenbot_order_rate_peak_1d" in PANELS["Order rate peak, 24h"]["targets"][0]["expr"]
    assert PANELS["Rate-limit rejections, 24h"]["targets"][0]["expr"].startswith(
        "pair:krakenbot_order_rate_limited:increase24h")


# ---- every colour edge and mapping from exporter/core/thresholds.py -------------------------------------------------

def steps(title):
    return [(s["value"], s["color"]) for s in PANELS[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_band_mappings_and_colours_are_the_exporters_band_values():
    for title in ("Band", "Band history"):
        mapping = PANELS[title]["fieldConfig"]["defaults"]["mappings"][0]["options"]
        assert {v["text"].lower(): int(k) for k, v in mapping.items()} == BAND_VALUE
        assert steps(title) == [(None, "green"), (BAND_VALUE["caution"], "orange"), (BAND_VALUE["stop"], "red")]


def test_headroom_colours_are_the_band_edges():
    for title in ("Headroom and runway", "Headroom and its 24h forecast"):
        assert steps(title) == [(None, "red"), (t.STOP_HEADROOM, "orange"), (t.CAUTION_HEADROOM, "green")]


def test_utilization_colours_are_where_the_default_safe_cap_turns_caution_and_stop():
    cap = math.floor(t.DEFAULT_LIMIT * t.DEFAULT_SAFETY_RATIO)
    # caution from the first whole order that leaves less than CAUTION_HEADROOM, stop likewise
    assert steps("Utilization of the safe cap") == [
        (None, "green"), ((cap - t.CAUTION_HEADROOM + 1) / cap, "orange"), ((cap - t.STOP_HEADROOM + 1) / cap, "red")]


def test_drift_and_forecast_colours_are_the_alerts_thresholds():
    assert steps("Drift (Kraken - internal)") == [(None, "red"), (-t.DRIFT_THRESHOLD + 1, "green"),
                                                   (t.DRIFT_THRESHOLD, "red")]
    assert steps("Time to the stop band") == [(None, "red"), (t.FORECAST_HORIZON_SECONDS, "green")]


def test_no_panel_colours_at_a_number_that_is_not_a_threshold():
    cap = math.floor(t.DEFAULT_LIMIT * t.DEFAULT_SAFETY_RATIO)
    allowed = {v for k, v in vars(t).items() if k.isupper() and isinstance(v, int | float)}
    allowed |= set(BAND_VALUE.values()) | {-t.DRIFT_THRESHOLD + 1, (cap - t.CAUTION_HEADROOM + 1) / cap,
                                          (cap - t.STOP_HEADROOM + 1) / cap}
    allowed |= {1}  # "any": one partial-cancel, Kraken data available, blind
    for panel in DASHBOARD["panels"]:
        for step in panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", []):
            assert step["value"] is None or step["value"] in allowed, (panel["title"], step)


def exported_metric_names():
    clock = ManualClock(start=time.time())
    exporter = CapacityExporter(clock=clock)
    telemetry = exporter.add_pair("XDGUSD")
    telemetry.observe_kraken_count(1)
    telemetry.set_internal_counts(slot_count=1)
    telemetry.observe_order_status("C", "closed", "13", "13", placed_at=clock.now() - 5)
    exporter.readings()  # a first headroom point, and a falling one a minute later: a forecast
    clock.advance(60)
    telemetry.observe_kraken_count(5)
    names = set()
    for family in text_string_to_metric_families(generate_latest(exporter.registry).decode()):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def test_no_panel_references_a_metric_the_exporter_or_the_rules_do_not_make():
    recorded = {r["record"] for g in yaml.safe_load((ROOT / "alerts" / "rules.yml").read_text())["groups"]
                for r in g["rules"] if "record" in r}
    exported = exported_metric_names()
    for title, target in targets():
        for name in re.findall(r"\b(?:pair:)?krakenbot_[a-z0-9_:]+", target["expr"]):
            assert name in recorded or name in exported, f"{title}: {name}"


# ---- every query against real Prometheus --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grafana")
    exporter = CapacityExporter()
    dog = exporter.add_pair("XDGUSD")
    btc = exporter.add_pair("XBTUSD")
    server = start_server(create_app(exporter))
    prom = start_prometheus(tmp, {"kraken-capacity-exporter": [f"127.0.0.1:{server.port}"]},
                            rules=fast_rules(tmp / "rules.yml"))
    # XDGUSD: Kraken 161 open (3 more than the bot tracks), 70 slots -> headroom 7, stop; one partial-open; 3 fills.
    dog.set_internal_counts(active_orders=156, recovery_orders=2, slot_count=70)
    dog.observe_kraken_count(161)
    # XBTUSD: no Kraken data (internal fallback), 120 open, 60 slots -> headroom 48, normal.
    btc.set_internal_counts(active_orders=120, recovery_orders=0, slot_count=60)
    assert wait_for(lambda: prom.value('krakenbot_fill_duration_seconds_count{pair="XDGUSD"}') == 0, timeout=30)
    now = time.time()
    for txid, age in (("OF1", 45), ("OF2", 90), ("OF3", 500)):
        dog.observe_order_status(txid, "closed", "13", "13", placed_at=now - age)
    dog.observe_order_status("OP1", "open", "13", "4")
    assert wait_for(lambda: prom.value('krakenbot_fill_duration_seconds_count{pair="XDGUSD"}') == 3
                    and prom.value('count(ALERTS{alertname="KrakenBotStopBand", alertstate="firing"})') == 1
                    # the recording rules have been evaluated on the scrape that saw the partial-open
                    and (prom.value('pair:krakenbot_partial_fill_open_events:increase24h{pair="XDGUSD"}') or 0) >= 1,
                    timeout=40)
    yield prom
    prom.stop()
    server.stop()


def run_panel(prom, title, ref="A"):
    target = next(t for t in PANELS[title]["targets"] if t["refId"] == ref)
    expr = (target["expr"].replace("$pair", "XDGUSD|XBTUSD").replace("$job", "kraken-capacity-exporter")
            .replace("$instance", ".+").replace("$__rate_interval", "1m"))
    return prom.query(expr)


def by(result, label="pair"):
    return {r["metric"].get(label): float(r["value"][1]) for r in result}




@pytest.mark.integration
def test_band_panels_show_stop_for_the_pair_at_headroom_7_and_normal_for_the_other(scraped):
    assert by(run_panel(scraped, "Band")) == {"XDGUSD": 2, "XBTUSD": 0}
    assert by(run_panel(scraped, "Band history")) == {"XDGUSD": 2, "XBTUSD": 0}


@pytest.mark.integration
def test_hint_panel_names_the_raised_hints(scraped):
    hints = {(r["metric"]["pair"], r["metric"]["hint"]) for r in run_panel(scraped, "Why (risk hints)")}
    assert hints == {("XDGUSD", "near_open_order_cap"), ("XDGUSD", "partial_fill_open_pressure"),
                     ("XBTUSD", "kraken_open_orders_unavailable")}


@pytest.mark.integration
def test_capacity_panels_show_the_spec_numbers(scraped):
    assert by(run_panel(scraped, "Utilization of the safe cap")) == pytest.approx({"XDGUSD": 161 / 168, "XBTUSD": 120 / 168})
    assert by(run_panel(scraped, "Open orders / safe cap", "A")) == {"XDGUSD": 161, "XBTUSD": 120}
    assert by(run_panel(scraped, "Open orders / safe cap", "B")) == {"XDGUSD": 168, "XBTUSD": 168}
    assert by(run_panel(scraped, "Headroom and runway", "A")) == {"XDGUSD": 7, "XBTUSD": 48}
    assert by(run_panel(scraped, "Headroom and runway", "B")) == {"XDGUSD": 3, "XBTUSD": 24}
    assert by(run_panel(scraped, "Open-order source")) == {"XDGUSD": 1, "XBTUSD": 0}
    # both bots call their hooks: neither pair is blind (XBTUSD runs on its internal count)
    assert by(run_panel(scraped, "Data")) == {"XDGUSD": 0, "XBTUSD": 0}


@pytest.mark.integration
def test_kraken_internal_and_drift_panels(scraped):
    assert by(run_panel(scraped, "Kraken vs internal open orders", "A")) == {"XDGUSD": 161}
    assert by(run_panel(scraped, "Kraken vs internal open orders", "B")) == {"XDGUSD": 158, "XBTUSD": 120}
    assert by(run_panel(scraped, "Kraken vs internal open orders", "C")) == {"XDGUSD": 168, "XBTUSD": 168}
    assert by(run_panel(scraped, "Drift (Kraken - internal)", "A")) == {"XDGUSD": 3}
    assert by(run_panel(scraped, "Drift (Kraken - internal)", "B")) == {"XDGUSD": 3}


@pytest.mark.integration
def test_headroom_forecast_panel_reads_the_predict_linear_rule(scraped):
    assert by(run_panel(scraped, "Headroom and its 24h forecast", "A")) == {"XDGUSD": 7, "XBTUSD": 48}
    # the headroom has been flat since the first scrape: the 6h trend forecasts the same headroom in 24h
    assert by(run_panel(scraped, "Headroom and its 24h forecast", "B")) == pytest.approx({"XDGUSD": 7, "XBTUSD": 48})


@pytest.mark.integration
def test_partial_fill_panel_counts_24h_events(scraped):
    opens = by(run_panel(scraped, "Partial fills, 24h", "A"))
    assert 1 <= opens["XDGUSD"] < 2 and opens["XBTUSD"] == 0  # increase() extrapolates a little
    assert by(run_panel(scraped, "Partial fills, 24h", "B")) == {"XDGUSD": 0, "XBTUSD": 0}


@pytest.mark.integration
def test_fill_time_panels_read_the_histogram(scraped):
    # fills of 45, 90 and 500 s: the median is interpolated in the (60, 120] bucket, the p95 in (300, 600]
    assert by(run_panel(scraped, "Fill time, median and p95 over 24h", "A"))["XDGUSD"] == pytest.approx(90)
    assert by(run_panel(scraped, "Fill time, median and p95 over 24h", "B"))["XDGUSD"] == pytest.approx(555)
    buckets = by(run_panel(scraped, "Fill time distribution"), label="le")
    assert set(buckets) == {str(float(b)) for b in (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800,
                                                    43200, 86400, 172800, 345600, 604800)} | {"+Inf"}
    assert buckets["+Inf"] > 0


@pytest.mark.integration
def test_firing_alerts_panel_lists_the_stop_page(scraped):
    firing = {(r["metric"]["alertname"], r["metric"]["pair"]) for r in run_panel(scraped, "Firing alerts")}
    assert ("KrakenBotStopBand", "XDGUSD") in firing
    assert not any(pair == "XBTUSD" and name == "KrakenBotStopBand" for name, pair in firing)
