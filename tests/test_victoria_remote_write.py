"""A real Prometheus scrapes a running exporter, evaluates the shipped rules and `remote_write`s everything to a real
VictoriaMetrics behind TLS and basic auth (the remote_write block `prometheus.yml` documents). Then, at one moment:
the exporter's series, the recorded series and ALERTS are in VictoriaMetrics with Prometheus' values; every
recording rule, every alert expression and every dashboard query answers the same from both (the few that differ,
and why, are listed here and in docs/rollout.md); vmalert accepts the rule file but for one field; and `baseline` and
`advise` read the same from both."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter import CapacityExporter, rollout
from exporter.web.app import create_app, start_server
from tests.certs import make_pki
from tests.conftest import free_port, require_binary, wait_for
from tests.harness import Prometheus, fast_rules
from tests.victoria import VM_DIGITS, VictoriaMetrics, assert_same

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
RULES = yaml.safe_load((ROOT / "alerts" / "rules.yml").read_text())
DASHBOARD = json.loads((ROOT / "grafana" / "dashboards" / "capacity-fill-health.json").read_text())
USER, PASSWORD = "prometheus", "rw-Kk19-never-shown"

# Expressions whose answer differs by design, with the reason (docs/rollout.md's "Other stores" says the same):
# increase() and rate() in VictoriaMetrics do not extrapolate to the window's edges as Prometheus does; they take
# the last sample before the window as the base, so one event counts exactly 1 where Prometheus says 1.0x.
NOT_EXTRAPOLATED = "increase()/rate() without Prometheus' extrapolation"
DIFFERS = {
    "pair:krakenbot_partial_fill_open_events:increase24h": NOT_EXTRAPOLATED,
    "Fill time distribution/A": NOT_EXTRAPOLATED,
}
# Queries with no answer from either store in this scenario, and why.
EMPTY_HERE: dict[str, str] = {}  # panels with no data in this stack (XDGUSD's headroom 7 is in the stop band: its forecast is 0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """Exporter -> Prometheus (rules, 1 s scrapes) -> remote_write -> VictoriaMetrics (TLS, basic auth).

    The scenario of tests/test_grafana.py: XDGUSD at headroom 7 (stop) with fills and a partial-open, XBTUSD on its
    internal count at headroom 48 (normal)."""
    tmp = tmp_path_factory.mktemp("remote-write")
    pki = make_pki(tmp / "pki")
    # VictoriaMetrics' default -search.latencyOffset (30 s) only delays when fresh samples become visible
    vm = VictoriaMetrics(tmp, tls=(pki.server_cert, pki.server_key), ca=pki.ca, auth=(USER, PASSWORD),
                         extra=["-search.latencyOffset=2s"])
    exporter = CapacityExporter()
    dog, btc = exporter.add_pair("XDGUSD"), exporter.add_pair("XBTUSD")
    server = start_server(create_app(exporter))
    password = tmp / "remote-write-password"
    password.write_text(PASSWORD + "\n")
    # prometheus.yml's VictoriaMetrics example as it is, pointed at this store, sending every second
    remote_write = remote_write_examples()["VictoriaMetrics"]
    remote_write["url"] = vm.write_url
    remote_write["basic_auth"].update(username=USER, password_file=str(password))
    remote_write["tls_config"]["ca_file"] = str(pki.ca)
    remote_write["queue_config"] = {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "1s"}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(fast_rules(tmp / "rules.yml"))],
        "scrape_configs": [{"job_name": "kraken-capacity-exporter",
                            "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}],
        "remote_write": [remote_write],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prom = Prometheus([require_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp / 'prom-data'}", f"--web.listen-address=127.0.0.1:{port}"],
                      f"http://127.0.0.1:{port}", tmp / "prometheus.log")
    try:
        prom.wait_ready("/-/ready")
        dog.set_internal_counts(active_orders=156, recovery_orders=2, slot_count=70)
        dog.observe_kraken_count(161)
        btc.set_internal_counts(active_orders=120, recovery_orders=0, slot_count=60)
        assert wait_for(lambda: prom.value('krakenbot_fill_duration_seconds_count{pair="XDGUSD"}') == 0, timeout=30)
        now = time.time()
        for txid, age in (("OF1", 45), ("OF2", 90), ("OF3", 500)):
            dog.observe_order_status(txid, "closed", "13", "13", placed_at=now - age)
        dog.observe_order_status("OP1", "open", "13", "4")
        assert wait_for(lambda: prom.value('count(ALERTS{alertname="KrakenBotStopBand", alertstate="firing"})') == 1
                        and (prom.value('pair:krakenbot_partial_fill_open_events:increase24h{pair="XDGUSD"}') or 0) >= 1
                        and prom.value('krakenbot_fill_duration_seconds_count{pair="XDGUSD"}') == 3, timeout=40)
        at = round(time.time() + 2, 3)  # a moment after all that, which both stores will have passed
        assert wait_for(lambda: time.time() > at + 3 and _vm_has_reached(vm, at), timeout=30), prom.log_path.read_text()[-2000:]
        yield {"prom": prom, "vm": vm, "at": at, "pki": pki, "password": password}
    finally:
        prom.stop()
        vm.stop()
        server.stop()


def remote_write_examples() -> dict[str, dict[str, Any]]:
    """prometheus.yml's commented `remote_write` examples, uncommented: {"VictoriaMetrics": entry, ...}."""
    examples, lines = {}, (ROOT / "prometheus.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        found = re.match(r"# Example: (\S+ ?\S*?)(?: \(|$)", line)
        if not found:
            continue
        assert lines[i + 1] == "# remote_write:", lines[i + 1]
        block = []
        for body in lines[i + 2:]:
            if not body.startswith("#   "):
                break
            block.append(body[2:])
        [entry] = yaml.safe_load("\n".join(block))
        examples[found.group(1).removeprefix("Grafana ")] = entry
    return examples


def _vm_has_reached(vm: VictoriaMetrics, at: float) -> bool:
    """Whether remote_write has delivered samples past `at` (raw and recorded)."""
    newest = vm.query('min(timestamp(krakenbot_status_band) or timestamp(pair:krakenbot_status_band:max))', time.time())
    return bool(newest) and float(newest[0]["value"][1]) > at + 1


def answers(result: list[dict[str, Any]]) -> dict[frozenset, float]:
    """{labels without __name__: value}, NaN left out (VictoriaMetrics leaves NaN out of every answer)."""
    values = {}
    for item in result:
        value = float(item["value"][1])
        if not math.isnan(value):
            values[frozenset((k, v) for k, v in item["metric"].items() if k != "__name__")] = value
    return values


def close(a: dict[frozenset, float], b: dict[frozenset, float]) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], rel_tol=VM_DIGITS) for k in a)


def both(stack, expr: str) -> tuple[dict, dict]:
    return answers(stack["prom"].query(expr, stack["at"])), answers(stack["vm"].query(expr, stack["at"]))


def expressions() -> dict[str, str]:
    exprs = {}
    for group in RULES["groups"]:
        for rule in group["rules"]:
            exprs[rule.get("record") or rule["alert"]] = rule["expr"]
    return exprs


def panel_queries() -> dict[str, str]:
    queries = {}
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            expr = (target["expr"].replace("$pair", ".+").replace("$job", ".+").replace("$instance", ".+")
                    .replace("$__rate_interval", "1m"))
            queries[f"{panel['title']}/{target['refId']}"] = expr
    return queries


# ------------------------------------------------------------------------------------------------- the tests

def test_remote_write_delivers_the_exporters_series_the_recorded_series_and_alerts(stack):
    for expr, expected in (('krakenbot_status_band{pair="XDGUSD"}', 2), ('krakenbot_open_orders_headroom{pair="XBTUSD"}', 48),
                           ('pair:krakenbot_status_band:max{pair="XDGUSD"}', 2),
                           ('pair:krakenbot_open_orders_headroom:min{pair="XDGUSD"}', 7),
                           ('ALERTS{alertname="KrakenBotStopBand", alertstate="firing", pair="XDGUSD"}', 1)):
        from_prom, from_vm = both(stack, expr)
        assert list(from_vm.values()) == [expected] and from_vm == from_prom, expr
    names = {item["metric"]["__name__"] for item in stack["vm"].query('{__name__=~"krakenbot_.+|pair:krakenbot_.+"}',
                                                                      stack["at"])}
    assert len(names) > 40 and {"pair:krakenbot_open_orders_headroom:predict_linear6h",
                                "krakenbot_fill_duration_seconds_bucket"} <= names


@pytest.mark.parametrize("name", list(expressions()))
def test_every_rule_expression_answers_the_same_from_victoriametrics(stack, name):
    from_prom, from_vm = both(stack, expressions()[name])
    if name in DIFFERS:
        assert from_prom.keys() == from_vm.keys() and not close(from_prom, from_vm), "no longer differs: update DIFFERS"
        # the counter saw one partial-open: VictoriaMetrics says exactly 1, Prometheus extrapolates past it
        assert from_vm == {frozenset({("pair", "XDGUSD")}): 1.0, frozenset({("pair", "XBTUSD")}): 0.0}
        assert from_prom[frozenset({("pair", "XDGUSD")})] > 1
    else:
        assert close(from_prom, from_vm), (from_prom, from_vm)


def test_rule_expressions_answer_for_both_pairs_not_just_equally_nothing(stack):
    from_vm = {name: both(stack, expr)[1] for name, expr in expressions().items() if "record" in _rule(name)}
    assert all(from_vm.values()), [name for name, answer in from_vm.items() if not answer]


@pytest.mark.parametrize("query", list(panel_queries()))
def test_every_dashboard_query_answers_the_same_from_victoriametrics(stack, query):
    from_prom, from_vm = both(stack, panel_queries()[query])
    assert bool(from_vm) != (query in EMPTY_HERE), f"{query}: {from_vm}"
    if query in DIFFERS:
        assert from_prom.keys() == from_vm.keys() and not close(from_prom, from_vm), "no longer differs: update DIFFERS"
        # buckets: within a minute 3 fills arrived; VictoriaMetrics counts them, Prometheus extrapolates the rise
        inf = frozenset({("le", "+Inf")})
        assert from_vm[inf] == 3 and from_prom[inf] > 3
    else:
        assert close(from_prom, from_vm), (from_prom, from_vm)


def test_the_dashboards_variables_list_the_same_values_from_victoriametrics(stack):
    vm, prom = stack["vm"], stack["prom"]
    for variable in DASHBOARD["templating"]["list"]:
        found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable.get("query") or "")
        if not found:
            continue
        match = found.group(1).replace("$job", ".+").replace("$instance", ".+")
        params = {"match[]": match, "start": stack["at"] - 60, "end": stack["at"]}
        from_vm = vm.get(f"/prometheus/api/v1/label/{found.group(2)}/values", **params).json()["data"]
        from_prom = requests.get(f"{prom.url}/api/v1/label/{found.group(2)}/values", params=params, timeout=10).json()["data"]
        assert sorted(from_vm) == sorted(from_prom) and from_vm, variable["name"]


def test_vmalert_accepts_the_rule_file_except_keep_firing_for(tmp_path):
    """vmalert (Debian's 1.79) validates every expression with the MetricsQL engine; it does not know the
    `keep_firing_for` field Prometheus 2.42 added, which one playbook alert uses."""
    vmalert = require_binary("vmalert")
    done = subprocess.run([vmalert, "-dryRun", f"-rule={ROOT / 'alerts' / 'rules.yml'}"], capture_output=True,
                          text=True, timeout=60)
    assert "unknown fields in rule: keep_firing_for" in done.stderr
    stripped = tmp_path / "rules.yml"
    text = (ROOT / "alerts" / "rules.yml").read_text()
    assert text.count("keep_firing_for:") == 1
    stripped.write_text(re.sub(r"\n\s+keep_firing_for: \S+", "", text))
    done = subprocess.run([vmalert, "-dryRun", f"-rule={stripped}"], capture_output=True, text=True, timeout=60)
    assert "fatal" not in done.stderr and "error" not in done.stderr.lower(), done.stderr[-2000:]


def test_prometheus_yml_shows_remote_write_to_victoriametrics_and_mimir_and_promtool_accepts_each(tmp_path):
    examples = remote_write_examples()
    assert set(examples) == {"VictoriaMetrics", "Mimir"}
    assert examples["Mimir"]["headers"] == {"X-Scope-OrgID": "kraken-bots"}
    assert examples["Mimir"]["url"].endswith("/api/v1/push") and examples["VictoriaMetrics"]["url"].endswith("/api/v1/write")
    shipped = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    assert "remote_write" not in shipped  # examples only: the stack runs without a central store
    for name, entry in examples.items():
        config = tmp_path / f"{name}.yml"
        config.write_text(yaml.safe_dump({**shipped, "rule_files": [str(ROOT / "alerts" / "rules.yml")],
                                          "remote_write": [entry]}))
        done = subprocess.run([require_binary("promtool"), "check", "config", str(config)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_docs_show_the_same_remote_write_entries_as_prometheus_yml():
    rollout = (ROOT / "docs" / "rollout.md").read_text()
    section = rollout[rollout.index("## Other stores: VictoriaMetrics, Mimir"):]
    block = section[section.index("```yaml\n") + 8:section.index("```", section.index("```yaml\n") + 8)]
    examples = remote_write_examples()
    assert yaml.safe_load(block)["remote_write"] == [examples["VictoriaMetrics"], examples["Mimir"]]
    assert "--prometheus-header X-Scope-OrgID=kraken-bots" in section  # and advise pointed at the Mimir tenant


def run(command: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = rollout.main(command, list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_baseline_and_advise_read_the_same_live_history_from_both(stack):
    vm, prom, at = stack["vm"], stack["prom"], stack["at"]
    access = ["--prometheus-ca-file", str(stack["pki"].ca), "--prometheus-username", USER,
              "--prometheus-password-file", str(stack["password"])]
    for pair, decision in (("XDGUSD", "stop"), ("XBTUSD", "add_slot")):
        answers_ = [run("advise", "--prometheus", url, "--pair", pair, "--at", str(at), "--format", "json", *flags)
                    for url, flags in ((prom.url, []), (vm.query_url, access))]
        (code_p, out_p, _), (code_v, out_v, _) = answers_
        assert code_p == code_v and json.loads(out_p) == json.loads(out_v)
        assert json.loads(out_v)["decision"] == decision
    reports = [run("baseline", "--prometheus", url, "--days", "1", "--end", str(at), "--format", "json", *flags)
               for url, flags in ((prom.url, []), (vm.query_url, access))]
    (code_p, out_p, _), (code_v, out_v, _) = reports
    assert code_p == code_v == 0
    from_prom, from_vm = json.loads(out_p), json.loads(out_v)
    assert_same(from_prom["pairs"], from_vm["pairs"])
    assert set(from_vm["pairs"]) == {"XDGUSD", "XBTUSD"}
    # the exporter's 24h median of fills of 45, 90 and 500 s (measured on the wall clock: a little over 90)
    assert from_vm["pairs"]["XDGUSD"]["days"][0]["median_fill_seconds"] == pytest.approx(90, abs=1)


def _rule(name: str) -> dict:
    return next(r for g in RULES["groups"] for r in g["rules"] if r.get("record", r.get("alert")) == name)
