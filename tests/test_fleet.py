"""A fleet's worth of pairs: one real Prometheus scrapes 20 exporters x 10 simulated pairs (tests/fleet.py) with the
shipped rules. Every rule group evaluates within its interval (Prometheus' own rule-group metrics), with no missed
iteration and no failure; every dashboard query and variable answers for the fleet; and `baseline` over the 200
pairs and 7 days asks the store exactly as many queries as for one pair."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter import rollout
from tests.conftest import free_port, require_binary, wait_for
from tests.fleet import Fleet
from tests.harness import Prometheus, fast_rules
from tests.victoria import RecordingProxy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = json.loads((ROOT / "grafana" / "dashboards" / "capacity-fill-health.json").read_text())
HOSTS, PER_HOST = 20, 10
SCRAPE, EVALUATE = 2, 5  # seconds; the shipped prometheus.yml uses 15 for both
EVALUATIONS = 6  # rounds of every rule group watched before the checks


@pytest.fixture(scope="module")
def fleet_prom(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fleet")
    fleet = Fleet(HOSTS, PER_HOST, speedup=120.0)
    prom = None
    try:
        port = free_port()
        config = {
            "global": {"scrape_interval": f"{SCRAPE}s", "evaluation_interval": f"{EVALUATE}s"},
            "rule_files": [str(fast_rules(tmp / "rules.yml"))],
            "scrape_configs": [
                {"job_name": "kraken-capacity-exporter",
                 "static_configs": [{"targets": [host.target for host in fleet.hosts]}]},
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prom = Prometheus([require_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                           f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                          f"http://127.0.0.1:{port}", tmp / "prometheus.log")
        prom.wait_ready("/-/ready")
        fleet.start()
        assert wait_for(lambda: prom.value('count(up{job="kraken-capacity-exporter"} == 1)') == HOSTS, timeout=60)
        assert wait_for(lambda: prom.value("count(pair:krakenbot_status_band:max)") == HOSTS * PER_HOST, timeout=60)
        # every group evaluated EVALUATIONS times since the fleet's data arrived, and Prometheus scraped itself since
        first = prom.value("min(prometheus_rule_group_last_evaluation_timestamp_seconds)")
        assert wait_for(lambda: (prom.value("min(prometheus_rule_group_last_evaluation_timestamp_seconds)") or 0)
                        >= first + EVALUATIONS * EVALUATE, timeout=EVALUATIONS * EVALUATE + 60)
        yield fleet, prom
    finally:
        if prom is not None:
            prom.stop()
        fleet.stop()


def per_group(prom: Prometheus, expr: str) -> dict[str, float]:
    return {r["metric"]["rule_group"].split(";")[-1]: float(r["value"][1]) for r in prom.query(expr)}


def test_every_rule_group_evaluates_within_its_interval_with_no_miss_and_no_failure(fleet_prom):
    _, prom = fleet_prom
    window = f"{EVALUATIONS * EVALUATE + 30}s"
    slowest = per_group(prom, f"max_over_time(prometheus_rule_group_last_duration_seconds[{window}])")
    intervals = per_group(prom, "prometheus_rule_group_interval_seconds")
    assert set(slowest) == set(intervals) == {"krakenbot.recording", "krakenbot.bands", "krakenbot.data",
                                              "krakenbot.playbook"}
    print("slowest evaluation per group, s:", slowest)
    assert all(slowest[g] < intervals[g] == EVALUATE for g in slowest), (slowest, intervals)
    assert set(per_group(prom, "prometheus_rule_group_iterations_missed_total").values()) == {0.0}
    assert set(per_group(prom, "prometheus_rule_evaluation_failures_total").values()) == {0.0}
    # and they evaluated the fleet: a recorded band for every pair, the bands spread over the fleet
    bands = {r["metric"]["pair"]: float(r["value"][1]) for r in prom.query("pair:krakenbot_status_band:max")}
    assert len(bands) == HOSTS * PER_HOST and set(bands.values()) == {0.0, 1.0, 2.0}


def test_the_stop_band_pages_for_every_pair_that_stayed_in_stop(fleet_prom):
    """The alerts evaluate the fleet, not just on time: a pair in stop at every evaluation of the last 3 rounds
    (longer than the test rules' `for: 2s`) has its KrakenBotStopBand firing."""
    _, prom = fleet_prom
    stopped = {r["metric"]["pair"] for r in prom.query(f"min_over_time(pair:krakenbot_status_band:max[{3 * EVALUATE}s]) == 2")}
    firing = {r["metric"]["pair"] for r in prom.query('ALERTS{alertname="KrakenBotStopBand", alertstate="firing"}')}
    assert stopped and stopped <= firing, stopped - firing


def panel_queries() -> dict[str, str]:
    """Every panel's query as Grafana sends it with All selected (All = `.+`) and a 1m rate interval."""
    return {f"{panel['title']}/{target['refId']}":
            target["expr"].replace("$pair", ".+").replace("$job", ".+").replace("$instance", ".+")
            .replace("$__rate_interval", "1m")
            for panel in DASHBOARD["panels"] for target in panel["targets"]}


# Per-pair panels answer for all 200 pairs; the others answer for those pairs the condition holds for.
SOME_PAIRS = {"Why (risk hints)/A", "Kraken vs internal open orders/A", "Drift (Kraken - internal)/A",
              "Drift (Kraken - internal)/B", "Time to the stop band/A", "Firing alerts/A",
              "Fill time distribution/A", "Fill time, median and p95 over 24h/A", "Fill time, median and p95 over 24h/B"}


@pytest.mark.parametrize("query", list(panel_queries()))
def test_every_dashboard_query_answers_for_the_fleet(fleet_prom, query):
    _, prom = fleet_prom
    expr = panel_queries()[query]
    if query not in SOME_PAIRS and query != "Fill time distribution/A":
        # a host whose scrape timed out on a loaded machine is stale until its next scrape: allow a few scrapes
        wait_for(lambda: len({r["metric"].get("pair") for r in prom.query(expr)}) == HOSTS * PER_HOST,
                 timeout=5 * SCRAPE, step=0.5)
    result = prom.query(expr)
    assert result, query
    pairs = {r["metric"].get("pair") for r in result}
    if query == "Fill time distribution/A":
        assert {r["metric"]["le"] for r in result} >= {"60.0", "+Inf"}  # summed over the fleet, by bucket
    elif query not in SOME_PAIRS:
        assert len(pairs) == HOSTS * PER_HOST, (query, len(pairs))


def test_the_dashboards_variables_list_the_fleet(fleet_prom):
    fleet, prom = fleet_prom
    values = {}
    for variable in DASHBOARD["templating"]["list"][1:]:
        match, label = variable["query"].removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        match = match.replace("$job", ".+").replace("$instance", ".+")
        values[label] = requests.get(f"{prom.url}/api/v1/label/{label}/values", params={"match[]": match},
                                     timeout=10).json()["data"]
    assert values["job"] == ["kraken-capacity-exporter"]
    assert sorted(values["instance"]) == sorted(host.target for host in fleet.hosts)
    assert sorted(values["pair"]) == sorted(fleet.pairs)


def run_baseline(url: str, *flags: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    assert rollout.main("baseline", ["--prometheus", url, "--format", "json", *flags], out=out, err=err) == 0, \
        err.getvalue()
    return json.loads(out.getvalue())


def test_baseline_over_200_pairs_asks_as_many_queries_as_for_one(fleet_prom):
    fleet, prom = fleet_prom
    proxy = RecordingProxy(prom.url, prefix="/p")
    try:
        end = str(time.time() - 5)
        one = run_baseline(proxy.url, "--pair", fleet.pairs[0], "--end", end)
        asked_for_one = [path for path in proxy.paths() if "/label/" not in path]
        proxy.clear()
        all_pairs = run_baseline(proxy.url, "--end", end)  # every pair the store has
        asked_for_all = [path for path in proxy.paths() if "/label/" not in path]
    finally:
        proxy.stop()
    assert sorted(all_pairs["pairs"]) == sorted(fleet.pairs) and list(one["pairs"]) == [fleet.pairs[0]]
    assert all(data["days"][-1]["coverage_ratio"] > 0 for data in all_pairs["pairs"].values())
    assert all(data["days"][0]["coverage_ratio"] == 0 for data in all_pairs["pairs"].values())  # a week ago: nothing
    assert len(asked_for_all) == len(asked_for_one) and sorted(asked_for_all) == sorted(asked_for_one)
    # a day per query for each of the 11 series (8, and the order rate counter's 3 since issue 18) over 8 days and the
    # band again (for the scrape interval); the 2 fill gauges at each of the 7 day ends (+2 for the histogram at a day
    # end where a pair has no gauge)
    raw = 12 * 8
    assert asked_for_one == ["/p/api/v1/query"] * len(asked_for_one)
    assert len(asked_for_one) - raw - 2 * 7 in range(0, 2 * 7 + 1, 2), len(asked_for_one)
    assert all_pairs["pairs"][fleet.pairs[0]] == one["pairs"][fleet.pairs[0]]  # a pair reads the same among 200
