"""Generates grafana/dashboards/capacity-fill-health.json with grafana-foundation-sdk (Grafana 11.6 schema).

    python grafana/generate.py            # rewrite the committed JSON
    python grafana/generate.py --check    # exit 1 if the committed JSON is not what this code generates

Panels read the recording rules of alerts/rules.yml where they exist, so Grafana and the pager never disagree.
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

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "capacity-fill-health.json"
UID = "krakenbot-capacity-fill-health"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
PAIR = 'pair=~"$pair"'

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"
BAND_MAPPINGS = [model.ValueMap(options={
    "0": model.ValueMappingResult(text="NORMAL", color=GREEN, index=0),
    "1": model.ValueMappingResult(text="CAUTION", color=ORANGE, index=1),
    "2": model.ValueMappingResult(text="STOP", color=RED, index=2),
})]
SOURCE_MAPPINGS = [model.ValueMap(options={
    "1": model.ValueMappingResult(text="Kraken", color=GREEN, index=0),
    "0": model.ValueMappingResult(text="FALLBACK (internal)", color=ORANGE, index=1),
})]


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
        "The spec's band per pair (worse of the PromQL band and the exporter's own): stop = no new slots.")
        .datasource(DATASOURCE).with_target(query(f"pair:krakenbot_status_band:max{{{PAIR}}}", "A", instant=True))
        .mappings(BAND_MAPPINGS).thresholds(thresholds((None, GREEN), (1, ORANGE), (2, RED)))
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).grid_pos(at(0, 0, 6, 5)))


def hints_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Why (risk hints)")
        .description("The reference bot's blocked_risk_hint codes now raised.")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (pair, hint) (krakenbot_blocked_risk_hint{{{PAIR}}}) == 1", "A",
                           legend="{{pair}}: {{hint}}", instant=True))
        .text_mode(common.BigValueTextMode.NAME).color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE).no_value("no risk hints").grid_pos(at(6, 0, 6, 5)))


def utilization_gauge() -> gauge.Panel:
    return (gauge.Panel().title("Utilization of the safe cap").description(
        "Open orders / floor(limit x safety ratio). With the default cap of 168, caution starts near 88%, stop near 94%.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_current_per_safe_cap:ratio{{{PAIR}}}", "A", instant=True))
        .unit("percentunit").min(0).max(1)
        .thresholds(thresholds((None, GREEN), (0.88, ORANGE), (0.94, RED))).grid_pos(at(12, 0, 6, 5)))


def orders_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Open orders / safe cap").datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_current:max_or_sum{{{PAIR}}}", "A", "{{pair}} open", instant=True))
        .with_target(query(f"pair:krakenbot_open_orders_safe_cap:min{{{PAIR}}}", "B", "{{pair}} safe cap", instant=True))
        .graph_mode(common.BigValueGraphMode.NONE).color_mode(common.BigValueColorMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).grid_pos(at(18, 0, 6, 5)))


def headroom_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Headroom and runway").description(
        "Orders left under the safe cap, and the advisory estimate of slots that still fit.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_headroom:min{{{PAIR}}}", "A", "{{pair}} headroom", instant=True))
        .with_target(query(f"min by (pair) (krakenbot_estimated_slots_remaining{{{PAIR}}})", "B", "{{pair}} slots left",
                           instant=True))
        .thresholds(thresholds((None, RED), (10, ORANGE), (20, GREEN)))
        .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .grid_pos(at(0, 5, 8, 5)))


def source_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Open-order source").description(
        "Kraken when a fresh OpenOrders count is used; FALLBACK when the bot's internal count is.")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (pair) (krakenbot_kraken_data_available{{{PAIR}}})", "A", instant=True))
        .mappings(SOURCE_MAPPINGS).thresholds(thresholds((None, ORANGE), (1, GREEN)))
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).grid_pos(at(8, 5, 8, 5)))


def partials_stat() -> stat.Panel:
    return (stat.Panel().reduce_options(last_value()).title("Partial fills, 24h").description(
        "Partial-opens (pressure) and partial-cancels (the PHANTOM_POSITION_CANARY: any one means stop).")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_partial_fill_open_events:increase24h{{{PAIR}}}", "A", "{{pair}} partial-open",
                           instant=True))
        .with_target(query(f"pair:krakenbot_partial_fill_cancel_events:increase24h{{{PAIR}}}", "B",
                           "{{pair}} partial-cancel", instant=True))
        .decimals(0).thresholds(thresholds((None, GREEN), (1, RED))).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).grid_pos(at(16, 5, 8, 5)))


def open_orders_series() -> timeseries.Panel:
    return (timeseries.Panel().title("Kraken vs internal open orders").datasource(DATASOURCE)
        .with_target(query(f"max by (pair) (krakenbot_open_orders_kraken{{{PAIR}}})", "A", "{{pair}} Kraken"))
        .with_target(query(f"sum by (pair) (krakenbot_open_orders_internal{{{PAIR}}})", "B", "{{pair}} internal"))
        .with_target(query(f"pair:krakenbot_open_orders_safe_cap:min{{{PAIR}}}", "C", "{{pair}} safe cap"))
        .unit("short").min(0).grid_pos(at(0, 10, 12, 8)))


def drift_series() -> timeseries.Panel:
    return (timeseries.Panel().title("Drift (Kraken - internal)").description(
        "Orders Kraken counts that the bot does not track (orphans), or the reverse when negative.")
        .datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_open_orders_drift:max{{{PAIR}}}", "A"))
        .unit("short").grid_pos(at(12, 10, 12, 8)))


def fill_time_series() -> timeseries.Panel:
    return (timeseries.Panel().title("Fill time, median and p95 over 24h").datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_fill_duration_seconds:p50_24h{{{PAIR}}}", "A", "{{pair}} median"))
        .with_target(query(f"pair:krakenbot_fill_duration_seconds:p95_24h{{{PAIR}}}", "B", "{{pair}} p95"))
        .unit("s").min(0).grid_pos(at(0, 18, 12, 8)))


def fill_heatmap() -> heatmap.Panel:
    return (heatmap.Panel().title("Fill time distribution").datasource(DATASOURCE)
        .with_target(query(f"sum by (le) (increase(krakenbot_fill_duration_seconds_bucket{{{PAIR}}}[$__rate_interval]))",
                           "A", "{{le}}", fmt=PromQueryFormat.HEATMAP))
        .calculate(False).unit("s").grid_pos(at(12, 18, 12, 8)))


def band_history() -> statetimeline.Panel:
    return (statetimeline.Panel().title("Band history").datasource(DATASOURCE)
        .with_target(query(f"pair:krakenbot_status_band:max{{{PAIR}}}", "A"))
        .mappings(BAND_MAPPINGS).thresholds(thresholds((None, GREEN), (1, ORANGE), (2, RED)))
        .grid_pos(at(0, 26, 24, 6)))


def firing_alerts() -> table.Panel:
    return (table.Panel().title("Firing alerts").description("KrakenBot alerts firing now (see the README's playbook).")
        .datasource(DATASOURCE)
        .with_target(query(f'ALERTS{{alertstate="firing", alertname=~"KrakenBot.*", {PAIR}}}', "A",
                           legend="{{alertname}}", instant=True, fmt=PromQueryFormat.TABLE))
        .no_value("no KrakenBot alert is firing").grid_pos(at(0, 32, 24, 6)))


PANELS = (band_stat, hints_stat, utilization_gauge, orders_stat, headroom_stat, source_stat, partials_stat,
          open_orders_series, drift_series, fill_time_series, fill_heatmap, band_history, firing_alerts)


def build() -> db.Dashboard:
    dashboard = (
        db.Dashboard("Capacity & Fill Health").uid(UID).tags(["kraken", "krakenbot", "capacity"])
        .description("kraken-capacity-exporter: open-order capacity, partial fills, fill times and the spec's bands.")
        .refresh("30s").time("now-24h", "now").timezone("browser").editable()
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(db.QueryVariable("pair").label("Pair").datasource(DATASOURCE)
                       .query("label_values(krakenbot_open_orders_safe_cap, pair)")
                       .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True).include_all(True)
                       .all_value(".*").sort(model.VariableSort.ALPHABETICAL_ASC))
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
