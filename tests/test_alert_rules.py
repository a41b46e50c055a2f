"""The shipped Prometheus and Alertmanager files, checked by the real promtool and amtool."""

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_binary

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_prometheus_config_and_rules_pass_promtool_check():
    promtool = require_binary("promtool")
    result = run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 rule files found" in result.stdout


def test_rules_pass_promtool_check_rules():
    result = run(require_binary("promtool"), "check", "rules", "alerts/rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", sorted(p.name for p in (ROOT / "alerts" / "tests").glob("*.yml")))
def test_promtool_unit_tests_pass(test_file):
    result = run(require_binary("promtool"), "test", "rules", f"alerts/tests/{test_file}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alertmanager_config_passes_amtool():
    result = run(require_binary("amtool"), "check-config", "alerts/alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules():
    groups = yaml.safe_load((ROOT / "alerts" / "rules.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_severity_summary_description_and_a_runbook_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), (rule["alert"], key)
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert f"### {rule['alert']}" in readme and anchor == rule["alert"].lower(), rule["alert"]


def test_every_alert_has_a_promtool_unit_test():
    tested = set()
    for path in (ROOT / "alerts" / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    assert {rule["alert"] for rule in alert_rules()} <= tested


def test_stop_pages_and_stop_inhibits_caution_for_the_same_pair():
    config = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    pager = [r for r in config["route"]["routes"] if r["receiver"] == "pager"]
    assert pager and pager[0]["matchers"] == ['severity="critical"']
    assert "pair" in config["route"]["group_by"]
    stop_rule = next(r for r in alert_rules() if r["alert"] == "KrakenBotStopBand")
    assert stop_rule["labels"]["severity"] == "critical"
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['alertname="KrakenBotStopBand"']
    assert inhibit["target_matchers"] == ['alertname="KrakenBotCautionBand"'] and inhibit["equal"] == ["pair"]


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=KrakenBotStopBand", "severity=critical", "pair=XDGUSD"], "pager"),
        (["alertname=KrakenBotPartialCancelCanary", "severity=critical", "pair=XDGUSD"], "pager"),
        (["alertname=KrakenBotCautionBand", "severity=warning", "pair=XDGUSD"], "tickets"),
        (["alertname=KrakenBotClearToScale", "severity=info", "pair=XDGUSD"], "tickets"),
    ],
)
def test_amtool_routes_critical_to_the_pager_and_the_rest_to_tickets(labels, receiver):
    result = run(require_binary("amtool"), "config", "routes", "test", "--config.file=alerts/alertmanager.yml", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver
