"""Where a store's answer could part from Prometheus', all real parts: a span of 52 days whose day ends are not UTC
midnights (VictoriaMetrics aligns a range query of 50 points or more to its step), fill gauges that stop in the
middle of a day or leave a gap across a day end (VictoriaMetrics' range queries look back a whole step for a bare
selector), staleness markers a stopped exporter leaves (VictoriaMetrics returns them as NaN samples), and a query
front whose long-term store is down (Prometheus answers with a warning and no data). `baseline` and `advise` give
the same from both stores, the numbers the script says, and `unknown` where the store cannot vouch for them."""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable, Iterator

import pytest
import requests
import yaml

from exporter import CapacityExporter, rollout
from exporter.web.app import create_app, start_server
from tests.conftest import free_port, require_binary, wait_for
from tests.harness import Prometheus
from tests.rollout_week import Week
from tests.victoria import VictoriaMetrics, assert_same
from tests.week_stores import backfill, start_prometheus_on

pytestmark = pytest.mark.integration

DAY, STEP, DAYS = 86400, 300, 52
LABELS = 'instance="bot-a:9477",job="kraken-capacity-exporter",pair="XDGUSD"'


def run(command: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = rollout.main(command, list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def strict_json(text: str) -> dict:
    """JSON as RFC 8259 has it: a bare NaN or Infinity fails the test."""
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token} in the JSON"))


# ------------------------------------------------------------------------------------------------- a long span

class LongSpan:
    """53 days of 5-minute samples ending at `end`, 12:00 UTC; the baseline reports the last 52. XDGUSD's 24h fill
    gauges rise through each day (so that a value names the moment it was read at); they are absent from 20:00
    before the 10th day end to 03:00 after it (a gap across a day end, not a whole day), and stop for good at 06:00
    of the last day (the exporter's fill tracking went away: 6 h before the last day end)."""

    def __init__(self, end: int) -> None:
        self.end = end
        self.first = end - (DAYS + 1) * DAY
        self.times = range(self.first + STEP, end + 1, STEP)
        gap_end = self.day_end(9)
        self.gap = (gap_end - 16 * 3600, gap_end + 15 * 3600)
        self.stopped = end - 6 * 3600

    def day_end(self, i: int) -> int:
        """The end of report day i (0..DAYS-1)."""
        return self.end - (DAYS - 1 - i) * DAY

    def median_at(self, t: float) -> float | None:
        if self.gap[0] <= t < self.gap[1] or t > self.stopped:
            return None
        return 100.0 + (t - self.first) // DAY * 10 + ((t - self.first) % DAY) / 3600

    def expected_fill(self, i: int) -> tuple[float | None, float | None, str | None]:
        """The gauges' last sample in the 300 s before day end i (the step is 300 s: the one at the day end)."""
        median = self.median_at(self.day_end(i))
        return (None, None, None) if median is None else (median, 3 * median, "gauge")

    def _lines(self, stamp: Callable[[int], str]) -> Iterator[str]:
        for name, value in (("krakenbot_status_band", lambda t: 0.0), ("krakenbot_slots", lambda t: 5.0),
                            ("krakenbot_fill_duration_median_1d_seconds", self.median_at),
                            ("krakenbot_fill_duration_p95_1d_seconds",
                             lambda t: None if self.median_at(t) is None else 3 * self.median_at(t))):
            yield f"# TYPE {name} gauge\n"
            for t in self.times:
                v = value(t)
                if v is not None:
                    yield f"{name}{{{LABELS}}} {v!r} {stamp(t)}\n"

    def openmetrics(self) -> Iterator[str]:
        yield from self._lines(str)
        yield "# EOF\n"

    def prometheus_text(self) -> Iterator[str]:
        yield from self._lines(lambda t: str(t * 1000))


@pytest.fixture(scope="module")
def long_span() -> LongSpan:
    return LongSpan(end=int(time.time() // DAY * DAY - DAY + 12 * 3600))  # yesterday, 12:00 UTC


@pytest.fixture(scope="module")
def long_stores(long_span: LongSpan, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("long")
    prom = start_prometheus_on(backfill(long_span, tmp), tmp / "prom", retention="400d")
    vm = None
    try:
        vm = VictoriaMetrics(tmp)
        vm.import_prometheus(long_span.prometheus_text())
        yield prom, vm
    finally:
        prom.stop()
        if vm is not None:
            vm.stop()


def test_52_days_ending_at_noon_give_the_same_report_from_both_stores_and_the_scripts_fill_times(long_span,
                                                                                                   long_stores):
    prom, vm = long_stores
    reports = []
    for url in (prom.url, vm.query_url):
        code, out, err = run("baseline", "--prometheus", url, "--pair", "XDGUSD", "--days", str(DAYS),
                             "--end", str(long_span.end), "--format", "json")
        assert code == 0 and err == "", err  # no "2 series of ..." from two answers put on one day
        reports.append(strict_json(out))
    from_prom, from_vm = reports
    assert_same({k: v for k, v in from_prom.items() if k != "prometheus"},
                {k: v for k, v in from_vm.items() if k != "prometheus"})
    days = from_vm["pairs"]["XDGUSD"]["days"]
    assert [d["end"] for d in days] == [long_span.day_end(i) for i in range(DAYS)]
    fills = [(d["median_fill_seconds"], d["p95_fill_seconds"], d["fill_source"]) for d in days]
    assert fills == [long_span.expected_fill(i) for i in range(DAYS)]
    # the cases are there, not equally absent: the gap across day end 9, the stop 6 h before the last
    assert [i for i, f in enumerate(fills) if f[2] is None] == [9, DAYS - 1]


def test_a_fill_gauge_that_stopped_hours_before_the_day_end_is_absent_from_both(long_span, long_stores):
    """The last day alone (a range query of one point is not aligned): VictoriaMetrics' range query of a bare
    selector would answer the 6-hour-old value, an instant query at the day end of either store none."""
    prom, vm = long_stores
    for url in (prom.url, vm.query_url):
        code, out, _ = run("baseline", "--prometheus", url, "--pair", "XDGUSD", "--days", "1",
                           "--end", str(long_span.end), "--format", "json")
        [day] = strict_json(out)["pairs"]["XDGUSD"]["days"]
        assert (code, day["median_fill_seconds"], day["fill_source"]) == (0, None, None)
    stale = requests.get(vm.query_url + "/api/v1/query_range", params={
        "query": 'krakenbot_fill_duration_median_1d_seconds{pair="XDGUSD"}', "start": long_span.end - DAY,
        "end": long_span.end, "step": DAY}, timeout=30).json()["data"]["result"]
    assert stale and stale[0]["values"][-1][0] == long_span.end  # what a range query of it would have said


# ------------------------------------------------------------------------------------------------- staleness

@pytest.fixture(scope="module")
def stopped_exporter(tmp_path_factory: pytest.TempPathFactory):
    """A real exporter scraped every second by Prometheus, which remote_writes to VictoriaMetrics; then the exporter
    stops, and Prometheus writes a staleness marker for each of its series (forwarded to VictoriaMetrics)."""
    tmp = tmp_path_factory.mktemp("stale")
    vm = VictoriaMetrics(tmp, extra=["-search.latencyOffset=1s"])
    exporter = CapacityExporter()
    pair = exporter.add_pair("XDGUSD")
    server = start_server(create_app(exporter))
    port = free_port()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "kraken-capacity-exporter",
                            "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}],
        "remote_write": [{"url": vm.write_url, "queue_config": {"batch_send_deadline": "1s", "max_backoff": "1s"}}],
    }))
    prom = Prometheus([require_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp / 'prom-data'}", f"--web.listen-address=127.0.0.1:{port}"],
                      f"http://127.0.0.1:{port}", tmp / "prometheus.log")
    try:
        prom.wait_ready("/-/ready")
        pair.set_internal_counts(active_orders=120, recovery_orders=0, slot_count=60)
        now = time.time()
        for txid, age in (("OF1", 45), ("OF2", 90), ("OF3", 500)):
            pair.observe_order_status(txid, "closed", "13", "13", placed_at=now - age)
        assert wait_for(lambda: (prom.value('count_over_time(krakenbot_status_band{pair="XDGUSD"}[1m])') or 0) >= 5
                        and prom.value('krakenbot_fill_duration_median_1d_seconds{pair="XDGUSD"}') is not None,
                        timeout=60)
        server.stop()  # the exporter goes away: the next scrape fails
        stopped = time.time()
        assert wait_for(lambda: _has_marker(vm, time.time()), timeout=60), "no staleness marker reached VictoriaMetrics"
        at = round(time.time() - 1, 3)
        assert wait_for(lambda: time.time() > at + 3, timeout=10)
        yield {"prom": prom, "vm": vm, "at": at, "stopped": stopped}
    finally:
        prom.proc.kill()  # its remote_write queue would retry a stopped store for a minute otherwise
        prom.proc.wait()
        vm.stop()


def _has_marker(vm: VictoriaMetrics, at: float) -> bool:
    """Whether VictoriaMetrics holds the NaN a staleness marker is, in the band's raw samples."""
    result = vm.query('krakenbot_status_band{pair="XDGUSD"}[60s]', at)
    return bool(result) and any(math.isnan(float(v)) for _, v in result[0]["values"])


def test_after_an_exporter_stops_both_stores_give_the_same_advice_and_a_baseline_without_nan(stopped_exporter):
    prom, vm, at = stopped_exporter["prom"], stopped_exporter["vm"], stopped_exporter["at"]
    assert at - stopped_exporter["stopped"] < 60  # within the playbook's 300 s: the last band still counts
    answers = [run("advise", "--prometheus", url, "--pair", "XDGUSD", "--at", str(at), "--format", "json")
               for url in (prom.url, vm.query_url)]
    (code_p, out_p, _), (code_v, out_v, _) = answers
    assert (code_v, strict_json(out_v)) == (code_p, strict_json(out_p))
    assert strict_json(out_v)["decision"] == "add_slot"  # not unknown with "no band sample ... the last one is from"
    reports = [run("baseline", "--prometheus", url, "--days", "1", "--end", str(at), "--format", "json")
               for url in (prom.url, vm.query_url)]
    (code_p, out_p, _), (code_v, out_v, _) = reports
    assert code_p == code_v == 0
    from_prom, from_vm = strict_json(out_p), strict_json(out_v)
    assert_same(from_prom["pairs"], from_vm["pairs"])
    day = from_vm["pairs"]["XDGUSD"]["days"][0]
    assert day["slots_end"] == 60 and day["headroom_min"] is not None and day["fill_source"] == "gauge"


# ------------------------------------------------------------------------------------------------- partial answers

@pytest.fixture(scope="module")
def query_front(tmp_path_factory: pytest.TempPathFactory):
    """Prometheus A, a query front that `remote_read`s long-term store B (another Prometheus, holding the scripted
    week); the test stops B."""
    tmp = tmp_path_factory.mktemp("front")
    week = Week(end=int(time.time() // 3600 * 3600 - 3600))
    store = start_prometheus_on(backfill(week, tmp), tmp / "b")
    port = free_port()
    (tmp / "a.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1m"},
        "remote_read": [{"url": f"{store.url}/api/v1/read", "read_recent": True, "remote_timeout": "5s"}]}))
    front = Prometheus([require_binary("prometheus"), f"--config.file={tmp / 'a.yml'}",
                        f"--storage.tsdb.path={tmp / 'a-data'}", f"--web.listen-address=127.0.0.1:{port}"],
                       f"http://127.0.0.1:{port}", tmp / "a.log")
    try:
        front.wait_ready("/-/ready")
        yield week, front, store
    finally:
        front.stop()
        if store.proc.poll() is None:
            store.stop()


def test_a_query_front_whose_long_term_store_is_down_is_unknown_not_a_week_without_data(query_front):
    week, front, store = query_front
    flags = ("--pair", "XDGUSD", "--end", str(week.end), "--days", "2", "--format", "json")
    code, out, _ = run("baseline", "--prometheus", front.url, *flags)
    assert code == 0 and strict_json(out)["pairs"]["XDGUSD"]["summary"]["days_with_data"] == 2  # read through A
    store.stop()
    answer = requests.get(front.url + "/api/v1/query", params={"query": "krakenbot_status_band[1d]",
                                                               "time": str(week.end)}, timeout=30).json()
    assert answer["status"] == "success" and answer["data"]["result"] == [] and answer["warnings"]  # the trap
    for command, extra in (("baseline", flags), ("advise", ("--pair", "XDGUSD", "--at", str(week.at(6, 8))))):
        for fmt in (("--format", "json"), ()):
            code, out, err = run(command, "--prometheus", front.url, *extra, *fmt)
            assert code == 3 and err.count("\n") == 1, (command, err)
            # advise asks for the pair's label values first, which a remote_read front never has in whole: it
            # answers them with the warning "not implemented" (and no values), B up or down
            said = "remote_read" if command == "baseline" else "not implemented"
            assert f"Prometheus at {front.url} answered " in err and f" only in part ({said}" in err
            if fmt:
                body = strict_json(out)
                assert (body["pairs"] == {} and body["error"] in err) if command == "baseline" else \
                    (body["decision"] == "unknown" and body["reasons"][0] in err)
