"""The shipped Prometheus and Alertmanager files: checked by the real promtool and amtool, generated from the
thresholds module, and held to the monitoring-mixins conventions (mixtool's lint, runbooks that resolve)."""

import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from exporter.core import thresholds as t
from exporter.core.capacity import BAND_VALUE
from exporter.core.windows import DAY_SECONDS
from exporter.sources.kraken_api import AUTH_RESULTS
from tests import promql
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
RULES_TEXT = (ROOT / "alerts" / "rules.yml").read_text()
GROUPS = yaml.safe_load(RULES_TEXT)["groups"]
RUNBOOKS = (ROOT / "docs" / "runbooks.md").read_text()
GENERATOR = runpy.run_path(str(ROOT / "alerts" / "generate.py"))
STOP, CAUTION, NORMAL = BAND_VALUE["stop"], BAND_VALUE["caution"], BAND_VALUE["normal"]


def run(*args, cwd=ROOT):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


def alert_rules():
    return [rule for group in GROUPS for rule in group["rules"] if "alert" in rule]


def alert(name):
    return next(rule for rule in alert_rules() if rule["alert"] == name)


def record(name):
    return next(rule["expr"] for group in GROUPS for rule in group["rules"] if rule.get("record") == name)


def seconds(duration):
    value, unit = re.fullmatch(r"(\d+)([smhd])", duration).groups()
    return int(value) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


# ---- real promtool and amtool ---------------------------------------------------------------------------------------

@pytest.mark.integration
def test_prometheus_config_and_rules_pass_promtool_check():
    promtool = require_binary("promtool")
    result = run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 rule files found" in result.stdout


@pytest.mark.integration
def test_rules_pass_promtool_check_rules():
    result = run(require_binary("promtool"), "check", "rules", "alerts/rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("test_file", sorted(p.name for p in (ROOT / "alerts" / "tests").glob("*.yml")))
def test_promtool_unit_tests_pass(test_file):
    result = run(require_binary("promtool"), "test", "rules", f"alerts/tests/{test_file}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.integration
def test_alertmanager_config_passes_amtool():
    result = run(require_binary("amtool"), "check-config", "alerts/alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


# ---- generated from the code ----------------------------------------------------------------------------------------

def test_the_committed_rules_are_what_the_generator_makes():
    assert GENERATOR["render"](GENERATOR["committed_base"]()) == RULES_TEXT


@pytest.mark.integration
def test_another_runbook_base_rewrites_every_url_and_the_unit_tests_still_pass(tmp_path):
    base = "https://wiki.example.org/ops/kraken-capacity.md"
    (tmp_path / "tests").mkdir()
    for path in (ROOT / "alerts" / "tests").glob("*.yml"):
        shutil.copy(path, tmp_path / "tests" / path.name)
    (tmp_path / "rules.yml").write_text(GENERATOR["render"](base))
    GENERATOR["rebase_unit_tests"](GENERATOR["committed_base"](), base, tmp_path / "tests")
    urls = re.findall(r"runbook_url: (\S+)", (tmp_path / "rules.yml").read_text())
    assert len(urls) == len(alert_rules()) and all(u.startswith(base + "#") for u in urls)
    for path in sorted((tmp_path / "tests").glob("*.yml")):
        result = run(require_binary("promtool"), "test", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_runbook_base_ending_in_a_slash_gives_urls_to_the_page_not_to_a_directory():
    assert GENERATOR["normalise_base"]("http://exporter-host:9477/runbooks/") == "http://exporter-host:9477/runbooks"
    assert GENERATOR["normalise_base"]("https://docs.example.org/") == "https://docs.example.org"
    assert GENERATOR["normalise_base"]("http://exporter-host:9477/runbooks") == "http://exporter-host:9477/runbooks"


def test_the_generator_refuses_a_runbook_base_that_is_not_an_absolute_url(capsys):
    assert GENERATOR["main"](["--check", "--runbook-base", "README.md"]) == 2
    assert "--runbook-base" in capsys.readouterr().err


# ---- mixtool's lint and the runbooks --------------------------------------------------------------------------------

def test_no_group_has_more_than_20_rules_and_names_are_unique():
    for group in GROUPS:
        assert len(group["rules"]) <= 20, group["name"]
    names = [r.get("alert") or r.get("record") for g in GROUPS for r in g["rules"]]
    assert len({g["name"] for g in GROUPS}) == len(GROUPS)
    assert len(names) == len(set(names))


def test_alert_names_are_camel_case_and_at_most_40_characters():
    for rule in alert_rules():
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", rule["alert"]), rule["alert"]
        assert len(rule["alert"]) <= 40, rule["alert"]


def test_recording_rules_are_named_level_metric_operations():
    for group in GROUPS:
        for rule in group["rules"]:
            if "record" not in rule:
                continue
            level, metric, operations = rule["record"].split(":")
            assert level == "pair" and metric.startswith("krakenbot_"), rule["record"]
            assert re.fullmatch(r"[a-z0-9_]+", operations), rule["record"]
            assert operations not in {"account", "promql"} and not operations.startswith("added"), rule["record"]


# Alerts about an exporter or a target rather than a pair, and what their description says instead.
NOT_PER_PAIR = {"KrakenBotExporterDown", "KrakenBotExporterAbsent", "KrakenBotKrakenKeyRejected", "KrakenBotKrakenStreamDown",
                "KrakenBotWebConfigReloadFailed"}


def test_every_alert_has_severity_summary_and_a_templated_description_with_the_pair_and_the_value():
    for rule in alert_rules():
        name, annotations = rule["alert"], rule["annotations"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert annotations.get("summary") and annotations.get("description"), name
        description = annotations["description"]
        who = "$labels.instance" if name in NOT_PER_PAIR else "$labels.pair"
        if name != "KrakenBotExporterAbsent":  # absent() has neither a label nor a value to show
            assert who in description, name
            assert "$value" in description or "| query" in description, name


def runbook_anchors():
    """GitHub's anchors of the runbooks page's headings."""
    headings = re.findall(r"^#{1,6} (.+)$", RUNBOOKS, flags=re.M)
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_runbook_url_is_absolute_from_one_base_and_its_anchor_is_a_heading_of_the_runbooks_page():
    base = GENERATOR["committed_base"]()
    assert re.match(r"https?://[^#\s]+$", base)
    anchors = runbook_anchors()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url == f"{base}#{rule['alert'].lower()}", rule["alert"]
        assert url.split("#", 1)[1] in anchors, rule["alert"]
        assert f"\n## {rule['alert']}\n" in RUNBOOKS, rule["alert"]


def test_every_alert_has_a_promtool_unit_test_that_fires_and_one_that_does_not():
    fires, quiet = set(), set()
    for path in (ROOT / "alerts" / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fires, names - fires
    assert names <= quiet, names - quiet


def test_unit_tests_evaluate_the_recording_rules_before_the_alerts():
    # promtool orders groups at random unless told: alerts would read the recording rules of the previous minute
    order = [group["name"] for group in GROUPS]
    assert order[0] == "krakenbot.recording" and all("record" in r for r in GROUPS[0]["rules"])
    for path in (ROOT / "alerts" / "tests").glob("*.yml"):
        assert yaml.safe_load(path.read_text())["group_eval_order"] == order, path.name


# ---- every threshold from exporter/core/thresholds.py ---------------------------------------------------------------

def for_seconds(name):
    return seconds(alert(name)["for"])


def test_the_band_edges_and_the_24h_windows_are_the_codes():
    band = record("pair:krakenbot_status_band_computed:max")
    assert sorted(promql.comparisons(band)) == sorted([("<", t.STOP_HEADROOM), ("<", t.CAUTION_HEADROOM), (">", 0)])
    assert promql.ranges(record("pair:krakenbot_partial_fill_cancel_events:increase24h")) == [
        t.PARTIAL_CANCEL_FREEZE_SECONDS]
    assert promql.ranges(record("pair:krakenbot_partial_fill_open_events:increase24h")) == [DAY_SECONDS]
    for quantile in ("p50_24h", "p95_24h"):
        assert promql.ranges(record(f"pair:krakenbot_fill_duration_seconds:{quantile}")) == [DAY_SECONDS]


def test_band_alerts_compare_with_the_exporters_band_values():
    assert (("==", STOP) in promql.comparisons(alert("KrakenBotStopBand")["expr"]))
    assert promql.comparisons(alert("KrakenBotCautionBand")["expr"]) == [("==", CAUTION)]
    assert ("==", NORMAL) in promql.comparisons(alert("KrakenBotClearToScale")["expr"])


def test_the_drift_alert_agrees_with_the_exporters_drift_hint():
    assert sorted(promql.comparisons(alert("KrakenBotOpenOrderDrift")["expr"])) == sorted(
        [(">=", t.DRIFT_THRESHOLD), ("<=", -t.DRIFT_THRESHOLD)])
    assert for_seconds("KrakenBotOpenOrderDrift") == t.DRIFT_PERSIST_SECONDS


def test_stale_and_blind_durations_are_the_codes():
    assert for_seconds("KrakenBotPairBlind") == t.BLIND_AFTER_SECONDS
    assert for_seconds("KrakenBotStatusScrapeFailing") == t.BLIND_AFTER_SECONDS
    assert promql.comparisons(alert("KrakenBotNotReporting")["expr"]) == [(">", t.HOOK_STALE_AFTER_SECONDS)]
    assert for_seconds("KrakenBotNotReporting") == t.BLIND_AFTER_SECONDS


def test_not_reporting_uses_the_embedded_hook_silence_limit_not_the_kraken_staleness():
    import inspect

    from exporter.core.telemetry import CapacityTelemetry

    parameters = inspect.signature(CapacityTelemetry).parameters
    assert parameters["stale_after"].default == t.HOOK_STALE_AFTER_SECONDS
    assert parameters["kraken_stale_after"].default == t.KRAKEN_STALE_AFTER_SECONDS


def test_the_key_alert_matches_the_pollers_auth_results():
    selector = promql.selectors(promql.parse(alert("KrakenBotKrakenKeyRejected")["expr"]))[0]
    op, regex = promql.matchers(selector)["result"]
    assert op == "=~" and set(regex.split("|")) == set(AUTH_RESULTS)


def test_playbook_counts_and_durations_are_the_codes():
    too_fast = alert("KrakenBotScalingTooFastInCaution")["expr"]
    assert (">", t.CAUTION_MAX_SLOTS_PER_DAY) in promql.comparisons(too_fast)
    assert promql.ranges(too_fast) == [t.CAUTION_SLOT_WINDOW_SECONDS]
    assert ("==", STOP) in promql.comparisons(alert("KrakenBotSlotAddedInStop")["expr"])
    clear = alert("KrakenBotClearToScale")["expr"]
    assert ("<", STOP) in promql.comparisons(clear) and ("==", STOP) in promql.comparisons(clear)
    assert min(promql.ranges(clear)) == t.RESUME_NORMAL_SECONDS
    assert (">", t.ORDER_RATE_HIGH_RATIO) in promql.comparisons(clear)  # advise's edges for the rate counter
    assert "pair:krakenbot_order_rate_limited:increase24h > 0" in clear
    assert promql.ranges(record("pair:krakenbot_order_rate_limited:increase24h")) == [DAY_SECONDS]


def test_the_order_rate_alerts_use_the_codes_edges():
    high = alert("KrakenBotOrderRateHigh")
    assert promql.comparisons(high["expr"]) == [(">", t.ORDER_RATE_HIGH_RATIO)]
    assert for_seconds("KrakenBotOrderRateHigh") == t.ORDER_RATE_HIGH_FOR_SECONDS
    assert "pair:krakenbot_order_rate_utilization_ratio:max" in high["expr"]
    limited = alert("KrakenBotOrderRateLimited")["expr"]
    assert promql.ranges(limited) == [t.ORDER_RATE_LIMITED_WINDOW_SECONDS] and (">", 0) in promql.comparisons(limited)


def test_the_forecast_rule_and_alert_use_the_forecast_edges():
    (call,) = promql.calls(record("pair:krakenbot_open_orders_headroom:predict_linear6h"), "predict_linear")
    assert call.args[0].range.total_seconds() == t.FORECAST_TREND_SECONDS
    assert promql.number(call.args[1]) == t.FORECAST_HORIZON_SECONDS
    expr = alert("KrakenBotStopBandForecast")["expr"]
    assert ("<", t.FORECAST_WARN_HEADROOM) in promql.comparisons(expr)
    assert ("<", t.STOP_HEADROOM) in promql.comparisons(expr)
    assert for_seconds("KrakenBotStopBandForecast") == t.FORECAST_ALERT_FOR_SECONDS


def test_no_rule_compares_with_a_number_that_is_not_a_threshold_or_a_band_value():
    allowed = {float(v) for k, v in vars(t).items() if k.isupper() and isinstance(v, int | float)}
    allowed |= {-float(t.DRIFT_THRESHOLD)} | {float(v) for v in BAND_VALUE.values()}
    for group in GROUPS:
        for rule in group["rules"]:
            for op, value in promql.comparisons(rule["expr"]):
                assert value in allowed, (rule.get("alert") or rule.get("record"), op, value)


# ---- Alertmanager ---------------------------------------------------------------------------------------------------

def test_critical_pages_and_stop_inhibits_caution_for_the_same_pair():
    config = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    pager = [r for r in config["route"]["routes"] if r["receiver"] == "pager"]
    assert pager and pager[0]["matchers"] == ['severity="critical"']
    assert "pair" in config["route"]["group_by"]
    for name in ("KrakenBotStopBand", "KrakenBotPairBlind", "KrakenBotExporterDown", "KrakenBotPartialCancelCanary"):
        assert alert(name)["labels"]["severity"] == "critical", name
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['alertname="KrakenBotStopBand"']
    assert inhibit["target_matchers"] == ['alertname=~"KrakenBotCautionBand|KrakenBotStopBandForecast"']
    assert inhibit["equal"] == ["pair"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=KrakenBotStopBand", "severity=critical", "pair=XDGUSD"], "pager"),
        (["alertname=KrakenBotPairBlind", "severity=critical", "pair=XDGUSD"], "pager"),
        (["alertname=KrakenBotPartialCancelCanary", "severity=critical", "pair=XDGUSD"], "pager"),
        (["alertname=KrakenBotCautionBand", "severity=warning", "pair=XDGUSD"], "tickets"),
        (["alertname=KrakenBotStopBandForecast", "severity=warning", "pair=XDGUSD"], "tickets"),
        (["alertname=KrakenBotClearToScale", "severity=info", "pair=XDGUSD"], "tickets"),
    ],
)
def test_amtool_routes_critical_to_the_pager_and_the_rest_to_tickets(labels, receiver):
    result = run(require_binary("amtool"), "config", "routes", "test", "--config.file=alerts/alertmanager.yml", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver
