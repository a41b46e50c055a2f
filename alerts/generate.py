"""Generates alerts/rules.yml: the recording rules and alerts, every threshold taken from exporter/core/thresholds.py.

    python alerts/generate.py                                   # rewrite alerts/rules.yml
    python alerts/generate.py --check                           # exit 1 if alerts/rules.yml is not what this makes
    python alerts/generate.py --runbook-base https://exporter.example.org:9477/runbooks

Every alert's `runbook_url` is `<runbook base>#<anchor>`, the anchor being the GitHub-style slug of the alert's
heading in docs/runbooks.md (`## KrakenBotStopBand` -> `krakenbotstopband`). The default base is the exporter's own
page, http://127.0.0.1:9477/runbooks, which serves docs/runbooks.md as shipped with that version; point it at the
address your operators reach (the exporter's host as Alertmanager's receivers see it, or wherever you publish
docs/runbooks.md). The base is kept in the generated file's header, so a later run without
`--runbook-base` keeps the base an operator chose; `--runbook-base` also rewrites the runbook URLs that the promtool
unit tests in alerts/tests/ expect, so they keep passing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's own exporter/, whatever is installed

from exporter.core import thresholds as t  # noqa: E402
from exporter.core.windows import DAY_SECONDS  # noqa: E402
from exporter.web.runbooks import slug  # noqa: E402

OUTPUT = ROOT / "alerts" / "rules.yml"
UNIT_TESTS = ROOT / "alerts" / "tests"
DEFAULT_RUNBOOK_BASE = "http://127.0.0.1:9477/runbooks"  # the exporter's own /runbooks page (docs/runbooks.md)
BASE_LINE = "# runbook base: "
# The runbook base is, by default, the exporter itself: when the exporter is what is down, its two alerts say where
# else the same runbook is (docs/alerts.md#runbook-links).
RUNBOOK_WHEN_DOWN = (" If the runbook link does not open (the exporter serves it), read this alert's section of "
                     "docs/runbooks.md of the version you run: in its repository, or in the installed package as "
                     "exporter/web/runbooks.md.")
JOB = "kraken-capacity-exporter"

# Alerting delays that are not thresholds of the spec or the exporter: how long a condition must hold before a
# notification, so that one failed scrape or one glitch does not notify.
STOP_PAGE_AFTER = 120.0
CAUTION_WARN_AFTER = 600.0
CANARY_PAGE_AFTER = 60.0
FALLBACK_WARN_AFTER = 900.0
KEY_REJECTED_AFTER = 300.0
STREAM_DOWN_AFTER = 600.0  # the executions stream reconnects within a minute; ten minutes down is not a blip
EXPORTER_DOWN_AFTER = 300.0
EXPORTER_ABSENT_AFTER = 600.0
WEB_CONFIG_REFUSED_AFTER = 300.0  # a refused web config file nobody has fixed: a half-written one is never loaded
# How long a stop page holds on the last known band once the data is gone (the pair is blind or its exporter down).
STOP_HOLD_SECONDS = DAY_SECONDS
# How long the playbook notices stay up: SlotAddedInStop after the slot, ClearToScale after the 72h have passed.
SLOT_IN_STOP_NOTICE_SECONDS = 3600.0
CLEAR_NOTICE_SECONDS = DAY_SECONDS
# idelta() looks this far back for the previous slot count, so a scrape gap shorter than this still shows the step.
SLOT_STEP_LOOKBACK_SECONDS = 3600.0

BAND = "pair:krakenbot_status_band:max"
HEADROOM = "pair:krakenbot_open_orders_headroom:min"
CANCELS_24H = "pair:krakenbot_partial_fill_cancel_events:increase24h"
SLOT_STEPS = "pair:krakenbot_slots:clamp_min_idelta"
FORECAST = "pair:krakenbot_open_orders_headroom:predict_linear6h"
RATE = "pair:krakenbot_order_rate_utilization_ratio:max"
RATE_LIMITED_24H = "pair:krakenbot_order_rate_limited:increase24h"
RATE_HIGH_RATIO = t.ORDER_RATE_HIGH_RATIO
RATE_HIGH_FOR = t.ORDER_RATE_HIGH_FOR_SECONDS  # bursts of a minute or two are normal
RATE_LIMITED_WINDOW = t.ORDER_RATE_LIMITED_WINDOW_SECONDS  # a rejection pages this long, then resolves on its own


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: 600 -> 10m, 259200 -> 72h."""
    whole = int(seconds)
    if whole != seconds or whole <= 0:
        raise ValueError(f"not a whole positive number of seconds: {seconds}")
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def num(value: float) -> str:
    """A threshold as PromQL writes it: 10, not 10.0."""
    return f"{value:g}"


def query(expr: str, then: str, otherwise: str = "") -> str:
    """Go template: run `expr` for this alert's pair and render `then` with its first value as `{{ $v }}`."""
    body = f'{{{{ with printf "{expr}" $labels.pair | query }}}}{{{{ $v := . | first | value }}}}{then}'
    return body + (f"{{{{ else }}}}{otherwise}{{{{ end }}}}" if otherwise else "{{ end }}")


def recording_rules() -> list[dict[str, Any]]:
    day = duration(DAY_SECONDS)
    freeze = duration(t.PARTIAL_CANCEL_FREEZE_SECONDS)

    def increase_or_window(event: str, window: str) -> str:
        return (
            "max by (pair) (\n"
            f'  label_replace(sum by (pair) (increase(krakenbot_{event}_total[{window}])), "from", "counter", "", "")\n'
            "  or\n"
            f'  label_replace(max by (pair) (krakenbot_{event}_1d), "from", "window", "", "")\n'
            ")\n"
        )

    def quantile(q: float) -> str:
        return f"histogram_quantile({q:g}, sum by (pair, le) (rate(krakenbot_fill_duration_seconds_bucket[{day}])))"

    return [
        # Open orders on the account for the pair. Kraken's count is per account and pair, so several bots on one pair
        # all report the same number (max); without Kraken data, the bots' internal counts add up (sum).
        {"record": "pair:krakenbot_open_orders_current:max_or_sum",
         "expr": "max by (pair) (krakenbot_open_orders_kraken)\nor\nsum by (pair) (krakenbot_open_orders_internal)\n"},
        {"record": "pair:krakenbot_open_orders_safe_cap:min", "expr": "min by (pair) (krakenbot_open_orders_safe_cap)"},
        # The smallest headroom of any bot on the pair: the smallest safe cap minus the account's open orders.
        {"record": HEADROOM,
         "expr": "pair:krakenbot_open_orders_safe_cap:min - pair:krakenbot_open_orders_current:max_or_sum"},
        {"record": "pair:krakenbot_open_orders_current_per_safe_cap:ratio",
         "expr": "pair:krakenbot_open_orders_current:max_or_sum / pair:krakenbot_open_orders_safe_cap:min"},
        {"record": RATE, "expr": "max by (pair) (krakenbot_order_rate_utilization_ratio)"},
        {"record": RATE_LIMITED_24H,
         "expr": f"sum by (pair) (increase(krakenbot_order_rate_limited_total[{duration(DAY_SECONDS)}]))"},
        {"record": "pair:krakenbot_open_orders_drift:max", "expr": "max by (pair) (krakenbot_open_orders_drift)"},
        {"record": "pair:krakenbot_open_orders_drift:min", "expr": "min by (pair) (krakenbot_open_orders_drift)"},
        {"record": "pair:krakenbot_slots:sum", "expr": "sum by (pair) (krakenbot_slots)"},
        # Slots added since the previous evaluation (a removal counts 0): sum_over_time of this is the sum of the
        # positive steps, so a slot removed and added again counts once, where increase() would read a counter reset.
        {"record": SLOT_STEPS,
         "expr": f"clamp_min(idelta(pair:krakenbot_slots:sum[{duration(SLOT_STEP_LOOKBACK_SECONDS)}]), 0)"},
        # Events in 24h from the counters (increase() survives restarts and counter resets), or the exporter's own
        # window where it is larger (an event before the first scrape) or where there are no counters (a scraped bot).
        {"record": "pair:krakenbot_partial_fill_open_events:increase24h",
         "expr": increase_or_window("partial_fill_open_events", day)},
        {"record": CANCELS_24H, "expr": increase_or_window("partial_fill_cancel_events", freeze)},
        {"record": "pair:krakenbot_fill_duration_seconds:p50_24h", "expr": quantile(0.5)},
        {"record": "pair:krakenbot_fill_duration_seconds:p95_24h", "expr": quantile(0.95)},
        # The spec's band from the headroom and the partial-cancels: 2 stop, 1 caution, 0 normal; the max over the
        # conditions. Absent (unknown) when there is no headroom and no partial-cancel: no data is never "normal".
        {"record": "pair:krakenbot_status_band_computed:max",
         "expr": (
             "max by (pair) (\n"
             f'  label_replace((({HEADROOM} < bool {num(t.STOP_HEADROOM)}) + ({HEADROOM} < bool '
             f'{num(t.CAUTION_HEADROOM)})), "from", "headroom", "", "")\n'
             "  or\n"
             f'  label_replace(({CANCELS_24H} > 0) * 0 + 2, "from", "partial_cancel", "", "")\n'
             ")\n")},
        # What alerts and dashboards use: the worse of the computed band and the exporters' own bands.
        {"record": BAND,
         "expr": (
             "max by (pair) (\n"
             '  label_replace(pair:krakenbot_status_band_computed:max, "from", "rules", "", "")\n'
             "  or\n"
             '  label_replace(max by (pair) (krakenbot_status_band), "from", "exporter", "", "")\n'
             ")\n")},
        # The headroom 24h ahead at the least-squares trend of the last 6h (what krakenbot_forecast_seconds_to_stop_band
        # reads as a time).
        {"record": FORECAST,
         "expr": f"predict_linear({HEADROOM}[{duration(t.FORECAST_TREND_SECONDS)}], {num(t.FORECAST_HORIZON_SECONDS)})"},
    ]


def alert(name: str, expr: str, severity: str, summary: str, description: str, for_seconds: float | None = None,
          keep_firing_for: float | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_seconds:
        rule["for"] = duration(for_seconds)
    if keep_firing_for:
        rule["keep_firing_for"] = duration(keep_firing_for)
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description, "runbook_url": None}
    return rule


def band_alerts() -> list[dict[str, Any]]:
    stop, caution = num(t.STOP_HEADROOM), num(t.CAUTION_HEADROOM)
    headroom_now = query(f"{HEADROOM}{{pair='%s'}}", 'headroom {{ $v | printf "%.0f" }}')
    cancels = query(f"{CANCELS_24H}{{pair='%s'}}", '{{ $v | printf "%.0f" }}')
    forecast_hours = duration(t.FORECAST_HORIZON_SECONDS)
    return [
        alert("KrakenBotStopBand",
              f"{BAND} == 2\nor on (pair)\n"
              f"(last_over_time({BAND}[{duration(STOP_HOLD_SECONDS)}]) == 2 unless on (pair) {BAND})\n",
              "critical", "{{ $labels.pair }} is in the STOP band: do not add slots",
              query(f"{BAND}{{pair='%s'}}",
                    f"Pair {{{{ $labels.pair }}}} is in the stop band (headroom < {stop} or a partial-cancel in 24h): "
                    f"{headroom_now} open orders under the safe cap; partial-cancels in 24h: {cancels}.",
                    f"Pair {{{{ $labels.pair }}}} was in the stop band and has had no band since (no data): the page "
                    f"holds until the data shows another band, for at most {duration(STOP_HOLD_SECONDS)}. "
                    "See KrakenBotPairBlind and KrakenBotExporterDown."),
              STOP_PAGE_AFTER),
        alert("KrakenBotCautionBand", f"{BAND} == 1", "warning",
              f"{{{{ $labels.pair }}}} is in the CAUTION band: at most {t.CAUTION_MAX_SLOTS_PER_DAY} slot a day",
              f"Pair {{{{ $labels.pair }}}} has {headroom_now} open orders under the safe cap "
              f"(caution below {caution}, stop below {stop}).",
              CAUTION_WARN_AFTER),
        alert("KrakenBotPartialCancelCanary", f"{CANCELS_24H} > 0", "critical",
              "{{ $labels.pair }}: a partially filled order was canceled (PHANTOM_POSITION_CANARY): freeze scaling",
              '{{ $value | printf "%.0f" }} partial-cancel event(s) in 24h on {{ $labels.pair }}: executed volume may be '
              "stranded without a recovery order. Freeze scaling and check the bot log for PHANTOM_POSITION_CANARY.",
              CANARY_PAGE_AFTER),
        alert("KrakenBotStopBandForecast",
              f"{HEADROOM} < {num(t.FORECAST_WARN_HEADROOM)}\n"
              f"and on (pair) {FORECAST} < {stop}\n"
              f"unless on (pair) {BAND} == 2\n",
              "warning",
              f"{{{{ $labels.pair }}}}: the 6h trend reaches the STOP band within {forecast_hours}",
              f"Pair {{{{ $labels.pair }}}} has headroom {{{{ $value | printf \"%.0f\" }}}} "
              f"(within {num(t.FORECAST_WARN_HEADROOM)}) and the "
              f"trend of the last {duration(t.FORECAST_TREND_SECONDS)} puts it at "
              + query(f"{FORECAST}{{pair='%s'}}", '{{ $v | printf "%.0f" }}')
              + f" in {forecast_hours} (stop below {stop})"
              + query("min by (pair) (krakenbot_forecast_seconds_to_stop_band{pair='%s'})",
                      "; the exporter expects the stop band in {{ $v | humanizeDuration }}")
              + ". Slow down scaling now.",
              t.FORECAST_ALERT_FOR_SECONDS),
        alert("KrakenBotOpenOrderDrift",
              f"pair:krakenbot_open_orders_drift:max >= {num(t.DRIFT_THRESHOLD)}\n"
              f"or on (pair)\npair:krakenbot_open_orders_drift:min <= -{num(t.DRIFT_THRESHOLD)}\n",
              "warning",
              f"{{{{ $labels.pair }}}}: Kraken and the bot disagree on open orders by {num(t.DRIFT_THRESHOLD)} or more "
              f"for {duration(t.DRIFT_PERSIST_SECONDS)}",
              "Kraken reports {{ $value }} more open orders than the bot tracks on {{ $labels.pair }} (negative: fewer). "
              "Orphans or lost orders count against the per-pair limit.",
              t.DRIFT_PERSIST_SECONDS),
    ]


def rate_alerts() -> list[dict[str, Any]]:
    """Kraken's order rate counter, the second capacity: high for a while (a warning), a rejection (a page)."""
    window = duration(RATE_LIMITED_WINDOW)
    return [
        alert("KrakenBotOrderRateHigh", f"{RATE} > {num(RATE_HIGH_RATIO)}\n", "warning",
              f"{{{{ $labels.pair }}}}: the order rate counter is above {RATE_HIGH_RATIO:.0%} of its threshold",
              f"Kraken's order rate counter of {{{{ $labels.pair }}}} has stayed above {RATE_HIGH_RATIO:.0%} of its "
              f"threshold for {duration(RATE_HIGH_FOR)} (at {{{{ $value | humanizePercentage }}}}): over the threshold "
              "every order on the pair fails with EOrder:Rate limit exceeded. Young cancels cost the most (+8 within "
              "5 s); see krakenbot_order_rate_level against krakenbot_order_rate_threshold.",
              RATE_HIGH_FOR),
        alert("KrakenBotOrderRateLimited",
              f"sum by (pair) (increase(krakenbot_order_rate_limited_total[{window}])) > 0\n", "critical",
              "{{ $labels.pair }}: Kraken refused orders with EOrder:Rate limit exceeded",
              f"Kraken refused {{{{ $value }}}} order(s) of {{{{ $labels.pair }}}} in the last {window} with "
              "EOrder:Rate limit exceeded: the bot's grid is not being placed as it thinks. Slow its re-placing and "
              "cancelling on the pair until krakenbot_order_rate_level is well below krakenbot_order_rate_threshold."),
    ]


def data_alerts() -> list[dict[str, Any]]:
    blind = duration(t.BLIND_AFTER_SECONDS)
    return [
        alert("KrakenBotPairBlind", "krakenbot_pair_blind == 1", "critical",
              f"{{{{ $labels.pair }}}}: no usable capacity data for {blind}: the stop signal is gone",
              f"{{{{ $labels.instance }}}} has had no usable data for {{{{ $labels.pair }}}} for {blind} "
              "(krakenbot_pair_blind {{ $value }}): no band can be computed, so no stop page can fire. serve: no fresh "
              "Kraken count; scrape: the bot's /api/status is unreachable; embedded: no hook call.",
              t.BLIND_AFTER_SECONDS),
        alert("KrakenBotKrakenDataUnavailable", "krakenbot_kraken_data_available == 0", "warning",
              f"{{{{ $labels.pair }}}}: no fresh Kraken open-order count for {duration(FALLBACK_WARN_AFTER)}",
              "{{ $labels.instance }} has no fresh Kraken count for {{ $labels.pair }} (krakenbot_kraken_data_available "
              "{{ $value }}): embedded, the band uses the bot's internal count, which misses orders the bot lost track of; "
              "serve, the pair is blind. Check krakenbot_kraken_requests_total by result and the API key's permissions.",
              FALLBACK_WARN_AFTER),
        # A stream token refused for want of the "WebSocket interface" permission is not a rejected key: the stream
        # stays off and OpenOrders goes on (KrakenBotKrakenStreamDown says so).
        alert("KrakenBotKrakenKeyRejected",
              "sum by (job, instance) (\n"
              '  increase(krakenbot_kraken_requests_total{result=~"invalid_key|permission_denied",endpoint!="GetWebSocketsToken"}'
              f"[{duration(KEY_REJECTED_AFTER)}])\n"
              "  or\n"
              '  increase(krakenbot_kraken_requests_total{result="invalid_key",endpoint="GetWebSocketsToken"}'
              f"[{duration(KEY_REJECTED_AFTER)}])\n"
              ") > 0\n",
              "warning", "{{ $labels.instance }}: Kraken rejects the API key",
              "{{ $value | printf \"%.0f\" }} Kraken call(s) of {{ $labels.instance }} were refused with invalid_key "
              f"or permission_denied in the last {duration(KEY_REJECTED_AFTER)}: no pair of this exporter gets a Kraken count.",
              KEY_REJECTED_AFTER),
        alert("KrakenBotKrakenStreamDown", "krakenbot_kraken_stream_up == 0", "warning",
              "{{ $labels.instance }}: Kraken's executions stream is down",
              f"{{{{ $labels.instance }}}} has had no live Kraken executions stream for {duration(STREAM_DOWN_AFTER)} "
              "(krakenbot_kraken_stream_up {{ $value }}): partial fills, partial-cancels and fill times arrive only when "
              "it is back (QueryOrders then settles the orders that ended meanwhile); OpenOrders keeps the open-order "
              "counts. See krakenbot_kraken_stream_reconnects_total by reason, and the log: a key without the "
              "\"WebSocket interface\" permission keeps the stream off.",
              STREAM_DOWN_AFTER, keep_firing_for=STREAM_DOWN_AFTER),  # a brief reconnect mid-outage: one ticket, not two
        alert("KrakenBotNotReporting",
              f"time() - max by (pair) (krakenbot_last_update_timestamp_seconds) > {num(t.HOOK_STALE_AFTER_SECONDS)}",
              "warning", "{{ $labels.pair }}: the bot has not reported for {{ $value | humanizeDuration }}",
              "No hook call, poll or scrape has updated {{ $labels.pair }} for {{ $value | humanizeDuration }} "
              f"(stale after {duration(t.HOOK_STALE_AFTER_SECONDS)}): its poll loop may be stuck.",
              t.BLIND_AFTER_SECONDS),
        alert("KrakenBotStatusScrapeFailing", "krakenbot_status_scrape_up == 0", "warning",
              "{{ $labels.pair }}: the bot's /api/status cannot be scraped",
              "{{ $labels.instance }} gets no capacity_fill_health for {{ $labels.pair }} from the bot "
              "(krakenbot_status_scrape_up {{ $value }}); see krakenbot_status_scrape_errors_total by reason.",
              t.BLIND_AFTER_SECONDS),
        alert("KrakenBotExporterDown", f'up{{job="{JOB}"}} == 0', "critical",
              f"{JOB} at {{{{ $labels.instance }}}} is down",
              "Prometheus cannot scrape {{ $labels.instance }} (up {{ $value }}): no capacity or band data, so no stop-band "
              "page either." + RUNBOOK_WHEN_DOWN,
              EXPORTER_DOWN_AFTER),
        alert("KrakenBotExporterAbsent", f'absent(up{{job="{JOB}"}})', "critical",
              f"No {JOB} target is being scraped",
              f"The job {JOB} has had no targets for {duration(EXPORTER_ABSENT_AFTER)}: the bots' capacity is not watched."
              + RUNBOOK_WHEN_DOWN,
              EXPORTER_ABSENT_AFTER),
        alert("KrakenBotWebConfigReloadFailed", "krakenbot_web_config_reload_failed == 1", "warning",
              "{{ $labels.instance }} refuses its changed web config file: the previous one stays in force",
              "{{ $labels.instance }} cannot apply its --web-config-file as it is on disk (krakenbot_web_config_reload_failed "
              "{{ $value }}): it does not load, or turns TLS on or off (a restart). The previous TLS and basic-auth "
              "settings still serve, so the change (a new password, mutual TLS) has not taken effect. /healthz's "
              "web_config and the exporter's log name the reason.",
              WEB_CONFIG_REFUSED_AFTER),
    ]


def playbook_alerts() -> list[dict[str, Any]]:
    window = duration(t.CAUTION_SLOT_WINDOW_SECONDS)
    resume = duration(t.RESUME_NORMAL_SECONDS)
    return [
        alert("KrakenBotScalingTooFastInCaution",
              f"sum_over_time({SLOT_STEPS}[{window}]) > {t.CAUTION_MAX_SLOTS_PER_DAY}\nand on (pair) {BAND} == 1\n",
              "warning",
              f"{{{{ $labels.pair }}}}: {{{{ $value }}}} slots added in {window} while in CAUTION "
              f"(playbook: at most {t.CAUTION_MAX_SLOTS_PER_DAY})",
              f"The caution band allows at most {t.CAUTION_MAX_SLOTS_PER_DAY} new slot in {window} on {{{{ $labels.pair }}}}; "
              "{{ $value }} were added.",
              ),
        alert("KrakenBotSlotAddedInStop", f"{SLOT_STEPS} > 0\nand on (pair) {BAND} == 2\n", "warning",
              "{{ $labels.pair }}: a slot was added while in STOP (playbook: none)",
              "{{ $value }} slot(s) added on {{ $labels.pair }} while the band is stop.",
              keep_firing_for=SLOT_IN_STOP_NOTICE_SECONDS),
        alert("KrakenBotClearToScale",
              f"{BAND} == 0\n"
              f"and on (pair) max_over_time({BAND}[{resume}]) < 2\n"
              f"and on (pair) max_over_time({BAND}[{duration(t.RESUME_NORMAL_SECONDS + CLEAR_NOTICE_SECONDS)}]) == 2\n"
              # advise waits while the order rate counter peaked near its threshold or refused an order (issue 18)
              f"unless on (pair) max by (pair) (krakenbot_order_rate_peak_1d / krakenbot_order_rate_threshold) "
              f"> {num(t.ORDER_RATE_HIGH_RATIO)}\n"
              f"unless on (pair) {RATE_LIMITED_24H} > 0\n",
              "info", f"{{{{ $labels.pair }}}}: no stop for {resume} and NORMAL now: clear to scale",
              f"The last stop of {{{{ $labels.pair }}}} ended more than {resume} ago and the band is normal "
              "({{ $value }}): the playbook allows scaling again."),
    ]


def rules(runbook_base: str) -> dict[str, Any]:
    groups = [
        {"name": "krakenbot.recording", "rules": recording_rules()},
        {"name": "krakenbot.bands", "rules": band_alerts() + rate_alerts()},
        {"name": "krakenbot.data", "rules": data_alerts()},
        {"name": "krakenbot.playbook", "rules": playbook_alerts()},
    ]
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["annotations"]["runbook_url"] = f"{runbook_base}#{slug(rule['alert'])}"
    return {"groups": groups}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(runbook_base: str = DEFAULT_RUNBOOK_BASE) -> str:
    header = (
        "# Generated by alerts/generate.py from exporter/core/thresholds.py: edit those, then run\n"
        "# `python alerts/generate.py` (tests fail when this file differs from a fresh generation).\n"
        "# Unit tests: alerts/tests/*.yml (promtool test rules); end to end: tests/test_alerting_e2e.py.\n"
        "# Runbooks: docs/runbooks.md (served by the exporter at /runbooks), one heading per alert.\n"
        f"{BASE_LINE}{runbook_base}\n"
    )
    body = yaml.dump(rules(runbook_base), Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    return header + body


def committed_base(path: Path = OUTPUT) -> str:
    """The runbook base recorded in the committed file's header (the default when there is none)."""
    if path.exists():
        match = re.search(rf"^{re.escape(BASE_LINE)}(\S+)$", path.read_text(), flags=re.M)
        if match:
            return match.group(1)
    return DEFAULT_RUNBOOK_BASE


def normalise_base(base: str) -> str:
    """The base without a trailing `/`: `<base>#<anchor>` is then the page itself, never `<base>/#<anchor>` (which
    only some servers answer)."""
    return base.rstrip("/") if re.match(r"^https?://[^/]+/", base) else base


def rebase_unit_tests(old: str, new: str, directory: Path = UNIT_TESTS) -> None:
    """Point the runbook URLs the promtool unit tests expect at the new base."""
    for path in sorted(directory.glob("*.yml")):
        text = path.read_text()
        if old in text:
            path.write_text(text.replace(f"{old}#", f"{new}#"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if alerts/rules.yml differs from a fresh generation")
    parser.add_argument("--runbook-base", help="absolute URL of the runbooks page, e.g. the exporter's http://HOST:9477/runbooks "
                        "(default: the one in rules.yml, first http://127.0.0.1:9477/runbooks)")
    args = parser.parse_args(argv)
    old = committed_base()
    base = normalise_base(args.runbook_base) if args.runbook_base else old
    if not re.match(r"^https?://\S+$", base) or "#" in base:
        print(f"--runbook-base must be an absolute http(s) URL without a #fragment: {base!r}", file=sys.stderr)
        return 2
    text = render(base)
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python alerts/generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    if base != old:
        rebase_unit_tests(old, base)
    print(f"wrote {OUTPUT} (runbook base {base})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
