"""grafana/dashboard-linter's rules, implemented here because the linter (a Go binary) cannot be installed.

Each test is one rule of the linter, by its name; a violation the dashboard means to keep is listed in
grafana/dashboards/.lint, in the linter's own format (`exclusions: {rule: {reason, entries: [{panel, targetIdx}]}}`),
and every exclusion has a reason and still matches a real violation (a stale exclusion fails too).
"""

import json
from pathlib import Path

import pytest
import yaml

from tests import promql

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
DASHBOARD = json.loads((DASHBOARDS / "capacity-fill-health.json").read_text())
LINT = yaml.safe_load((DASHBOARDS / ".lint").read_text())
VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
DATASOURCE_REFS = {"$datasource", "${datasource}"}
# A magic duration standing for $__rate_interval while parsing, as the linter does (its own, 8869990787ms,
# overflows promql-parser).
RATE_INTERVAL = "8869990s"
# Series that are counters: must only be read through rate(), irate() or increase().
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
# dashboard-linter's panel-units-rule list, the part that can apply here.
VALID_UNITS = {"none", "string", "short", "percent", "percentunit", "s", "ms", "m", "h", "d", "dtdurations",
               "dtdhms", "bool", "ops", "reqps", "cps"}


def targets():
    for panel in DASHBOARD["panels"]:
        for index, target in enumerate(panel.get("targets", [])):
            yield panel, index, target


def parsed(target):
    return promql.parse(target["expr"].replace("$__rate_interval", RATE_INTERVAL))


def excluded(rule, panel, index=None):
    entries = (LINT.get("exclusions") or {}).get(rule) or {}
    for entry in entries.get("entries", []):
        if entry.get("panel") == panel["title"] and (index is None or str(entry.get("targetIdx")) == str(index)):
            return True
    return False


def violations(rule, check):
    """(panel title, target index) of every target failing `check`, and of those the ones not excluded."""
    found = [(panel["title"], index) for panel, index, target in targets() if not check(target)]
    kept = [(title, index) for title, index in found
            if not excluded(rule, next(p for p in DASHBOARD["panels"] if p["title"] == title), index)]
    return found, kept


def test_every_exclusion_has_a_reason_and_still_matches_a_violation():
    checks = {"target-job-rule": has_matcher("job"), "target-instance-rule": has_matcher("instance")}
    for rule, entries in (LINT.get("exclusions") or {}).items():
        assert rule in checks, f"{rule}: no exclusion expected for this rule"
        assert entries.get("reason", "").strip(), rule
        found, _ = violations(rule, checks[rule])
        for entry in entries["entries"]:
            assert (entry["panel"], int(entry["targetIdx"])) in found, f"{rule}: stale exclusion {entry}"


def test_template_datasource_rule():
    sources = [v for v in VARIABLES.values() if v["type"] == "datasource"]
    assert len(sources) == 1
    assert sources[0]["name"] == "datasource" and sources[0]["label"] == "Data source"
    assert sources[0]["query"] == "prometheus"


@pytest.mark.parametrize("name", ["job", "instance"])
def test_template_job_and_instance_rules(name):
    variable = VARIABLES[name]
    assert variable["type"] == "query"
    assert variable["datasource"]["uid"] in DATASOURCE_REFS
    assert variable["label"] == name.title()
    assert variable["multi"] is True and variable["allValue"] == ".+"


def test_template_on_time_change_reload_rule():
    for variable in VARIABLES.values():
        if variable["type"] == "query":
            assert variable["refresh"] == 2, variable["name"]


def test_template_label_promql_rule():
    for variable in VARIABLES.values():
        if variable["type"] == "query":
            query = variable["query"]
            assert query.startswith("label_values(") and query.endswith(")")
            metric, label = query[len("label_values("):-1].rsplit(",", 1)
            promql.parse(metric)  # raises on invalid PromQL
            assert label.strip() == variable["name"]


def test_template_uneditable_rule():
    assert DASHBOARD["editable"] is False


def test_panel_datasource_rule():
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] in DATASOURCE_REFS, panel["title"]
    for panel, _, target in targets():
        assert target["datasource"]["uid"] in DATASOURCE_REFS, panel["title"]


def test_panel_title_description_rule():
    for panel in DASHBOARD["panels"]:
        assert panel.get("title", "").strip(), panel["id"]
        assert panel.get("description", "").strip(), panel["title"]


def test_panel_units_rule_on_every_panel():
    for panel in DASHBOARD["panels"]:
        assert panel["fieldConfig"]["defaults"].get("unit") in VALID_UNITS, panel["title"]


def test_panel_no_targets_rule():
    for panel in DASHBOARD["panels"]:
        assert panel.get("targets"), panel["title"]


def test_target_promql_rule():
    for _, _, target in targets():
        parsed(target)  # raises on invalid PromQL


def has_matcher(label):
    def check(target):
        return all(promql.matchers(selector).get(label) == ("=~", f"${label}")
                   for selector in promql.selectors(parsed(target)))
    return check


@pytest.mark.parametrize("label", ["job", "instance"])
def test_target_job_and_instance_rules(label):
    _, kept = violations(f"target-{label}-rule", has_matcher(label))
    assert kept == [], f'queries without {label}=~"${label}" and no exclusion in .lint: {kept}'


def test_every_query_of_raw_series_is_filtered_by_job_and_instance():
    # the exclusions may only be queries of the recording rules (level:metric:operations) and ALERTS
    for panel, index, target in targets():
        for selector in promql.selectors(parsed(target)):
            name = selector.name
            if ":" not in name and name != "ALERTS":
                assert promql.matchers(selector).get("job") == ("=~", "$job"), (panel["title"], index, name)
                assert promql.matchers(selector).get("instance") == ("=~", "$instance"), (panel["title"], index, name)


def test_target_rate_interval_rule_for_every_rate_and_increase():
    for panel, _, target in targets():
        for node, parents in promql.walk(parsed(target)):
            if promql.is_matrix(node) and parents and promql.call_name(parents[-1]) in ("rate", "irate", "increase"):
                assert node.range.total_seconds() == int(RATE_INTERVAL[:-1]), (panel["title"], target["expr"])


def test_target_counter_agg_rule_counters_only_inside_rate_or_increase():
    for panel, _, target in targets():
        for node, parents in promql.walk(parsed(target)):
            if promql.is_selector(node) and ":" not in node.name and node.name.endswith(COUNTER_SUFFIXES):
                assert len(parents) >= 2 and promql.is_matrix(parents[-1]), (panel["title"], node.name)
                assert promql.call_name(parents[-2]) in ("rate", "irate", "increase"), (panel["title"], node.name)
