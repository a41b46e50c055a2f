"""Generates grafana/dashboards/capacity-fill-health.json with grafana-foundation-sdk (Grafana 11.6 schema).

    python grafana/generate.py            # rewrite the committed JSON
    python grafana/generate.py --check    # exit 1 if the committed JSON is not what this code generates

Panels read the recording rules of alerts/rules.yml where they exist, so Grafana and the pager never disagree; every
colour edge comes from exporter/core/thresholds.py. The dashboard follows grafana/dashboard-linter's rules
(tests/test_grafana_lint.py); its exceptions are in grafana/dashboards/.lint, each with its reason.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import gauge, heatmap, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's own exporter/, whatever is installed

from exporter.core import thresholds as t  # noqa: E402
from exporter.core.capacity import BAND_VALUE, safe_cap  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "capacity-fill-health.json"
UID = "krakenbot-capacity-fill-health"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
PAIR = 'pair=~"$pair"'
# Raw series are filtered by the job and instance variables too (dashboard-linter's target-job/instance rules);
# the recording rules are aggregated by pair across bots and carry neither label (see .lint).
RAW = 'job=~"$job", instance=~"$instance", pair=~"$pair"'
NORMAL, CAUTION, STOP = BAND_VALUE["normal"], BAND_VALUE["caution"], BAND_VALUE["stop"]
DEFAULT_CAP = safe_cap(t.DEFAULT_LIMIT, t.DEFAULT_SAFETY_RATIO)
# Utilization from which the default safe cap is in caution / stop: headroom below the edge, in whole orders.
CAUTION_UTILIZATION = (DEFAULT_CAP - t.CAUTION_HEADROOM + 1) / DEFAULT_CAP
STOP_UTILIZATION = (DEFAULT_CAP - t.STOP_HEADROOM + 1) / DEFAULT_CAP

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"
BAND_MAPPINGS = [model.ValueMap(options={
    str(NORMAL): model.ValueMappingResult(text="NORMAL", color=GREEN, index=0),
    str(CAUTION): model.ValueMappingResult(text="CAUTION", color=ORANGE, index=1),
    str(STOP): model.ValueMappingResult(text="STOP", color=RED, index=2),
})]
SOURCE_MAPPINGS = [model.ValueMap(options={
    "1": model.ValueMappingResult(text="Kraken", color=GREEN, index=0),
    "0": model.ValueMappingResult(text="FALLBACK (internal)", color=ORANGE, index=1),
})]
BLIND_MAPPINGS = [model.ValueMap(options={
    "0": model.ValueMappingResult(text="seen", color=GREEN, index=0),
    "1": model.ValueMappingResult(text="BLIND", color=RED, index=1),
})]


def band_thresholds() -> db.ThresholdsConfig:
    return thresholds((None, GREEN), (CAUTION, ORANGE), (STOP, RED))


def headroom_thresholds() -> db.ThresholdsConfig:
    return thresholds((None, RED), (t.STOP_HEADROOM, ORANGE), (t.CAUTION_HEADROOM, GREEN))


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=value, color=color) for value, color in steps])


def query(expr: str, ref: str, legend: str = "{{pair}}", instant: bool = False,
          fmt: PromQueryFormat | None = None) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).ref_id(ref).legend_format(legend).datasource(DATASOURCE)
    if instant:
        q = q.instant()
    if fmt is not None:
        q = q.format(fmt)
    return q


def last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def at(x: int, y: int, w: int, h: int) -> model.GridPos:
    return model.GridPos(x=x, y=y, w=w, h=h)


def band_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Band").description(
        "The spec's band per pair (worse of the band the rules compute and the exporter's own): stop = no new slots.")
        .datasource(DATASOURCE).with_target(query(f"pair:krakenbot_status_band:max{{{PAIR}}}", "A", instant=True))
        .unit("none").mappings(BAND_MAPPINGS).thresholds(band_thresholds())
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).grid_pos(at(0, 0, 6, 5)))


def hints_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Why (risk hints)")
        .description("The reference bot's blocked_risk_hint codes now raised.")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (pair, hint) (krakenbot_blocked_risk_hint{{{RAW}}}) == 1", "A",
                           legend="{{pair}}: {{hint}}", instant=True))
        .unit("none").text_mode(common.BigValueTextMode.NAME).color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE).no_value("no risk hints").grid_pos(at(6, 0, 6, 5)))


def utilization_gauge() -> gauge.Panel:
    return (gauge.Panel().title("Utilization of the safe cap").description(
        f"Open orders / floor(limit x safety ratio). With the default cap of {DEFAULT_CAP}, caution starts at "
        f"{CAUTION_UTILIZATION:.1%} (headroom under {t.CAUTION_HEADROOM}), stop at {STOP_UTILIZATION:.1%} "
        f"(headroom under {t.STOP_HEADROOM}).")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_current_per_safe_cap:ratio{{{PAIR}}}", "A", instant=True))
        .unit("percentunit").min(0).max(1)
        .thresholds(thresholds((None, GREEN), (CAUTION_UTILIZATION, ORANGE), (STOP_UTILIZATION, RED)))
        .grid_pos(at(12, 0, 6, 5)))


def orders_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Open orders / safe cap")
        .description("Open orders on the account for the pair (Kraken's count, else the bots' internal counts added "
                     "up) and the smallest safe cap configured.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_current:max_or_sum{{{PAIR}}}", "A", "{{pair}} open", instant=True))
        .with_target(query(f"pair:krakenbot_open_orders_safe_cap:min{{{PAIR}}}", "B", "{{pair}} safe cap", instant=True))
        .unit("short").graph_mode(common.BigValueGraphMode.NONE).color_mode(common.BigValueColorMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).grid_pos(at(18, 0, 6, 5)))


def headroom_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Headroom and runway").description(
        f"Orders left under the safe cap (stop under {t.STOP_HEADROOM}, caution under {t.CAUTION_HEADROOM}), and the "
        "advisory estimate of slots that still fit.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_headroom:min{{{PAIR}}}", "A", "{{pair}} headroom", instant=True))
        .with_target(query(f"min by (pair) (krakenbot_estimated_slots_remaining{{{RAW}}})", "B", "{{pair}} slots left",
                           instant=True))
        .unit("short").thresholds(headroom_thresholds())
        .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .grid_pos(at(0, 5, 6, 5)))


def source_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Open-order source").description(
        "Kraken when a fresh OpenOrders count is used; FALLBACK when the bot's internal count is.")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (pair) (krakenbot_kraken_data_available{{{RAW}}})", "A", instant=True))
        .unit("none").mappings(SOURCE_MAPPINGS).thresholds(thresholds((None, ORANGE), (1, GREEN)))
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).grid_pos(at(6, 5, 5, 5)))


def blind_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Data").description(
        "BLIND when the exporter has no usable data for the pair (no fresh Kraken count in serve, the bot unreachable "
        f"in scrape, no hook call embedded); KrakenBotPairBlind pages after {t.BLIND_AFTER_SECONDS / 60:g} minutes.")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (pair) (krakenbot_pair_blind{{{RAW}}})", "A", instant=True))
        .unit("none").mappings(BLIND_MAPPINGS).thresholds(thresholds((None, GREEN), (1, RED)))
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).no_value("no blind state exported")
        .grid_pos(at(11, 5, 5, 5)))


def partials_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Partial fills, 24h").description(
        "Partial-opens (pressure) and partial-cancels (the PHANTOM_POSITION_CANARY: any one means stop).")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_partial_fill_open_events:increase24h{{{PAIR}}}", "A", "{{pair}} partial-open",
                           instant=True))
        .with_target(query(f"pair:krakenbot_partial_fill_cancel_events:increase24h{{{PAIR}}}", "B",
                           "{{pair}} partial-cancel", instant=True))
        .unit("short").decimals(0).thresholds(thresholds((None, GREEN), (1, RED))).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).grid_pos(at(16, 5, 8, 5)))


def open_orders_series() -> timeseries.Panel:
    return (timeseries.Panel().title("Kraken vs internal open orders")
        .description("Kraken's count for the pair, the bots' own counts added up, and the safe cap.")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (pair) (krakenbot_open_orders_kraken{{{RAW}}})", "A", "{{pair}} Kraken"))
        .with_target(query(f"sum by (pair) (krakenbot_open_orders_internal{{{RAW}}})", "B", "{{pair}} internal"))
        .with_target(query(f"pair:krakenbot_open_orders_safe_cap:min{{{PAIR}}}", "C", "{{pair}} safe cap"))
        .unit("short").min(0).grid_pos(at(0, 10, 12, 8)))


def drift_series() -> timeseries.Panel:
    return (timeseries.Panel().title("Drift (Kraken - internal)").description(
        "Orders Kraken counts that the bot does not track (orphans), or the reverse when negative. "
        f"KrakenBotOpenOrderDrift warns at {t.DRIFT_THRESHOLD} or more either way for "
        f"{t.DRIFT_PERSIST_SECONDS / 60:g} minutes.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_drift:max{{{PAIR}}}", "A", "{{pair}} max"))
        .with_target(query(f"pair:krakenbot_open_orders_drift:min{{{PAIR}}}", "B", "{{pair}} min"))
        .unit("short")
        .thresholds(thresholds((None, RED), (-t.DRIFT_THRESHOLD + 1, GREEN), (t.DRIFT_THRESHOLD, RED)))
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
        .grid_pos(at(12, 10, 12, 8)))


def headroom_forecast_series() -> timeseries.Panel:
    hours = t.FORECAST_TREND_SECONDS / 3600
    return (timeseries.Panel().title("Headroom and its 24h forecast").description(
        f"Headroom now, and where the least-squares trend of the last {hours:g}h puts it "
        f"{t.FORECAST_HORIZON_SECONDS / 3600:g}h ahead (predict_linear). KrakenBotStopBandForecast warns when the "
        f"headroom is under {t.FORECAST_WARN_HEADROOM} and the forecast under {t.STOP_HEADROOM} for an hour.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_headroom:min{{{PAIR}}}", "A", "{{pair}} headroom"))
        .with_target(query(f"pair:krakenbot_open_orders_headroom:predict_linear6h{{{PAIR}}}", "B",
                           "{{pair}} in 24h at the 6h trend"))
        .unit("short").thresholds(headroom_thresholds())
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
        .grid_pos(at(0, 18, 12, 8)))


def forecast_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Time to the stop band").description(
        "The exporter's forecast: when the headroom reaches the stop edge at the least-squares trend of the last "
        f"{t.FORECAST_TREND_SECONDS / 3600:g}h (the same estimate as predict_linear). Red within "
        f"{t.FORECAST_HORIZON_SECONDS / 3600:g}h; 0 once the headroom is in the stop band; no value while it is above "
        "the band and not falling, or the pair is blind.")
        .datasource(DATASOURCE)
        .with_target(query(f"min by (pair) (krakenbot_forecast_seconds_to_stop_band{{{RAW}}})", "A", instant=True))
        .unit("s").thresholds(thresholds((None, RED), (t.FORECAST_HORIZON_SECONDS, GREEN)))
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).no_value("headroom not falling")
        .grid_pos(at(12, 18, 12, 8)))


def fill_time_series() -> timeseries.Panel:
    return (timeseries.Panel().title("Fill time, median and p95 over 24h")
        .description("Placement-to-fill time of closed orders, from the histogram over the last 24h.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_fill_duration_seconds:p50_24h{{{PAIR}}}", "A", "{{pair}} median"))
        .with_target(query(f"pair:krakenbot_fill_duration_seconds:p95_24h{{{PAIR}}}", "B", "{{pair}} p95"))
        .unit("s").min(0).grid_pos(at(0, 26, 12, 8)))


def fill_heatmap() -> heatmap.Panel:
    return (heatmap.Panel().title("Fill time distribution")
        .description("Fills per fill-time bucket in each interval.")
        .datasource(DATASOURCE)
        .with_target(query(f"sum by (le) (increase(krakenbot_fill_duration_seconds_bucket{{{RAW}}}[$__rate_interval]))",
                           "A", "{{le}}", fmt=PromQueryFormat.HEATMAP))
        .calculate(False).unit("s").grid_pos(at(12, 26, 12, 8)))


def order_rate_series() -> timeseries.Panel:
    return (timeseries.Panel().title("Order rate counter vs threshold").description(
        "Kraken's per-pair order rate counter (placements +1, young cancels up to +8, decaying by tier) against its "
        f"threshold: over it, orders fail with EOrder:Rate limit exceeded. KrakenBotOrderRateHigh warns above "
        f"{t.ORDER_RATE_HIGH_RATIO:.0%} for {t.ORDER_RATE_HIGH_FOR_SECONDS / 60:g} minutes. See docs/order-rate.md.")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (pair) (krakenbot_order_rate_level{{{RAW}}})", "A", "{{pair}} counter"))
        .with_target(query(f"min by (pair) (krakenbot_order_rate_threshold{{{RAW}}})", "B", "{{pair}} threshold"))
        .unit("short").min(0).grid_pos(at(0, 34, 12, 8)))


def order_rate_peak_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Order rate peak, 24h").description(
        "The rate counter's highest value in the last 24h as a share of its threshold: above "
        f"{t.ORDER_RATE_HIGH_RATIO:.0%}, advise says wait (a slot adds order traffic).")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (pair) (krakenbot_order_rate_peak_1d{{{RAW}}} / krakenbot_order_rate_threshold{{{RAW}}})",
                           "A", instant=True))
        .unit("percentunit").thresholds(thresholds((None, GREEN), (t.ORDER_RATE_HIGH_RATIO, ORANGE), (1, RED)))
        .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .no_value("no order rate counter exported").grid_pos(at(12, 34, 6, 8)))


def order_rate_rejections_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Rate-limit rejections, 24h").description(
        "Orders Kraken refused with EOrder:Rate limit exceeded in the last 24h: any one pages KrakenBotOrderRateLimited.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_order_rate_limited:increase24h{{{PAIR}}}", "A", instant=True))
        .unit("short").decimals(0).thresholds(thresholds((None, GREEN), (1, RED)))
        .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .no_value("no order rate counter exported").grid_pos(at(18, 34, 6, 8)))


def band_history() -> statetimeline.Panel:
    return (statetimeline.Panel().title("Band history").description("The band per pair over time.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_status_band:max{{{PAIR}}}", "A"))
        .unit("none").mappings(BAND_MAPPINGS).thresholds(band_thresholds())
        .grid_pos(at(0, 42, 24, 6)))


def firing_alerts() -> table.Panel:
    return (table.Panel().title("Firing alerts").description("KrakenBot alerts firing now (runbooks: the exporter's /runbooks).")
        .datasource(DATASOURCE)
        .with_target(query(f'ALERTS{{alertstate="firing", alertname=~"KrakenBot.*", {PAIR}}}', "A",
                           legend="{{alertname}}", instant=True, fmt=PromQueryFormat.TABLE))
        .unit("none").no_value("no KrakenBot alert is firing").grid_pos(at(0, 48, 24, 6)))


PANELS = (band_stat, hints_stat, utilization_gauge, orders_stat, headroom_stat, source_stat, blind_stat, partials_stat,
          open_orders_series, drift_series, headroom_forecast_series, forecast_stat, fill_time_series, fill_heatmap,
          order_rate_series, order_rate_peak_stat, order_rate_rejections_stat, band_history, firing_alerts)


def label_variable(name: str, query_text: str) -> db.QueryVariable:
    """A multi-select label variable as dashboard-linter wants it: reloaded on time range change, All = `.+`."""
    return (db.QueryVariable(name).label(name.title()).datasource(DATASOURCE).query(query_text)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True).include_all(True)
            .all_value(".+").sort(model.VariableSort.ALPHABETICAL_ASC))


def build() -> db.Dashboard:
    dashboard = (
        db.Dashboard("Capacity & Fill Health").uid(UID).tags(["kraken", "krakenbot", "capacity"])
        .description("kraken-capacity-exporter: open-order capacity, partial fills, fill times and the spec's bands.")
        .refresh("30s").time("now-24h", "now").timezone("browser").readonly()
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(label_variable("job", "label_values(krakenbot_pair_blind, job)"))
        .with_variable(label_variable("instance", 'label_values(krakenbot_pair_blind{job=~"$job"}, instance)'))
        .with_variable(label_variable(
            "pair", 'label_values(krakenbot_pair_blind{job=~"$job", instance=~"$instance"}, pair)'))
    )
    for number, panel in enumerate(PANELS, start=1):
        dashboard = dashboard.with_panel(panel().id(number))
    return dashboard


def render() -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    json.loads(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
