"""`baseline` and `advise` against the stores operators scale out to, all real: VictoriaMetrics holding the scripted
week (imported through `/api/v1/import/prometheus`) gives the same report and decisions as Prometheus holding it
(backfilled by promtool); the same behind TLS, basic auth and a path prefix, behind vmauth with a bearer token,
and a Prometheus that demands a client certificate. Failures are `unknown` (exit 3) in one line, with no secret in
any output or log."""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from pathlib import Path

import pytest
import requests

from exporter import rollout
from tests.certs import bcrypt_hash, make_pki
from tests.conftest import free_port
from tests.rollout_week import DAY, Week
from tests.victoria import RecordingProxy, VmAuth, assert_same
from tests.week_stores import backfill, start_prometheus_on, start_victoria_with

pytestmark = pytest.mark.integration

USER, PASSWORD, TOKEN = "rollout", "pw-Zq81-never-shown", "tok-Hh27-never-shown"


# ------------------------------------------------------------------------------------------------- the stores

@pytest.fixture(scope="module")
def week() -> Week:
    return Week(end=int(time.time() // 3600 * 3600 - 3600))


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(scope="module")
def pki(tmp: Path):
    return make_pki(tmp / "pki")


@pytest.fixture(scope="module")
def secrets(tmp: Path) -> dict[str, str]:
    paths = {"password": tmp / "password", "wrong": tmp / "wrong-password", "token": tmp / "token",
             "wrong_token": tmp / "wrong-token"}
    paths["password"].write_text(PASSWORD + "\n")
    paths["wrong"].write_text("not-" + PASSWORD + "\n")
    paths["token"].write_text(TOKEN + "\n")
    paths["wrong_token"].write_text("not-" + TOKEN + "\n")
    return {name: str(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def data(week: Week, tmp: Path) -> Path:
    return backfill(week, tmp)


@pytest.fixture(scope="module")
def prom(data: Path, tmp: Path):
    server = start_prometheus_on(data, tmp / "plain")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vm(week: Week, tmp: Path):
    server = start_victoria_with(week, tmp)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vm_secure(week: Week, tmp: Path, pki):
    """TLS, basic auth and the query API below a path prefix, as a vmselect behind a load balancer has it."""
    server = start_victoria_with(week, tmp, tls=(pki.server_cert, pki.server_key), ca=pki.ca,
                                 auth=(USER, PASSWORD), path_prefix="/select/0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vmauth(vm, tmp: Path):
    server = VmAuth(tmp, vm.url, TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prom_mtls(data: Path, tmp: Path, pki):
    """A second Prometheus on the same blocks (read-only use), demanding a client certificate and basic auth."""
    web = tmp / "web.yml"
    web.write_text(json.dumps({
        "tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key),
                              "client_ca_file": str(pki.ca), "client_auth_type": "RequireAndVerifyClientCert"},
        "basic_auth_users": {USER: bcrypt_hash(PASSWORD)},
    }))
    copy = tmp / "data-mtls"
    import shutil

    shutil.copytree(data, copy, ignore=shutil.ignore_patterns("lock", "wal", "chunks_head", "queries.active"))
    server = start_prometheus_on(copy, tmp / "mtls", web_config=web, verify=str(pki.ca), auth=(USER, PASSWORD),
                                 cert=(str(pki.client_cert), str(pki.client_key)))
    yield server
    server.stop()


# ------------------------------------------------------------------------------------------------- helpers

def run(command: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = rollout.main(command, list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def baseline(url: str, week: Week, *flags: str) -> dict:
    code, out, err = run("baseline", "--prometheus", url, "--end", str(week.end), "--format", "json", *flags)
    assert code == 0, err
    return json.loads(out)


def advise(url: str, at: float, *flags: str, pair: str = "XDGUSD") -> tuple[int, dict]:
    code, out, err = run("advise", "--prometheus", url, "--pair", pair, "--at", str(at), "--format", "json", *flags)
    body = json.loads(out)
    assert body["exit_code"] == code, err
    return code, body


def same_report(a: dict, b: dict) -> None:
    """The reports of two stores: everything but the store's own address."""
    assert_same({k: v for k, v in a.items() if k != "prometheus"}, {k: v for k, v in b.items() if k != "prometheus"})


def moments(week: Week) -> dict[str, float]:
    """Moments of the week where the playbook answers each way (tests/test_rollout.py checks the answers)."""
    last_stop = max(t for t in week.xdg.times if t <= week.at(4, 0) and week.xdg_band(t) == 2)
    return {"frozen": week.at(0, 10), "stop": week.at(1, 10), "wait after stop": week.at(1, 14),
            "wait before 72h": last_stop + 72 * 3600 - 30, "add after 72h": last_stop + 72 * 3600 + 30,
            "add in caution": week.at(4, 14), "wait in caution": week.at(4, 16), "add in normal": week.at(6, 8),
            "unknown in a gap": week.at(2, 18, 30)}


EXPECTED = {"frozen": (2, "frozen"), "stop": (2, "stop"), "wait after stop": (1, "wait"),
            "wait before 72h": (1, "wait"), "add after 72h": (0, "add_slot"), "add in caution": (0, "add_slot"),
            "wait in caution": (1, "wait"), "add in normal": (0, "add_slot"), "unknown in a gap": (3, "unknown")}


def no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text


def one_line_unknown(command: str, url: str, *flags: str, week: Week) -> str:
    """`command` fails as unknown, exit 3: in text one line on stderr and nothing on stdout; in JSON the result on
    stdout and at most one line on stderr. Returns the line."""
    extra = ["--pair", "XDGUSD", "--at", str(week.at(6, 8))] if command == "advise" else ["--end", str(week.end)]
    code, out, err = run(command, "--prometheus", url, *extra, *flags)
    assert (code, out, err.count("\n")) == (3, "", 1), (code, out, err)
    code, out_json, err_json = run(command, "--prometheus", url, *extra, *flags, "--format", "json")
    assert code == 3 and err_json.count("\n") <= 1
    body = json.loads(out_json)
    if command == "advise":
        assert (body["decision"], body["exit_code"], body["band"]) == ("unknown", 3, None)
        assert err.split(": ", 1)[1].strip() == body["reasons"][0]
    else:
        assert body["pairs"] == {} and err.split(": ", 1)[1].strip() == body["error"]
    no_secret(out, err, out_json, err_json)
    return err.strip()


# ------------------------------------------------------------------------------------------------- the same answers

def test_baseline_from_victoriametrics_is_the_report_from_prometheus(prom, vm, week):
    flags = ("--pair", "XDGUSD,XBTUSD,ETHUSD")
    from_prom, from_vm = baseline(prom.url, week, *flags), baseline(vm.query_url, week, *flags)
    assert from_vm["prometheus"] == vm.query_url
    same_report(from_prom, from_vm)
    days = from_vm["pairs"]["XDGUSD"]["days"]  # the week's events are there, not just equally absent
    assert [d["partial_cancel_events"] for d in days] == [1, 0, 0, 0, 0, 0, 0]
    assert days[3]["fill_source"] == "histogram" and days[2]["seconds_kraken_fallback"] == 3 * 3600


def test_baseline_without_pair_finds_the_same_pairs_in_both(prom, vm, week):
    same_report(baseline(prom.url, week, "--days", "2"), baseline(vm.query_url, week, "--days", "2"))
    assert sorted(baseline(vm.query_url, week, "--days", "1")["pairs"]) == ["SOLUSD", "XBTUSD", "XDGUSD"]


@pytest.mark.parametrize("moment", list(EXPECTED))
def test_advise_from_victoriametrics_decides_as_from_prometheus(prom, vm, week, moment):
    at = moments(week)[moment]
    code_p, from_prom = advise(prom.url, at)
    code_v, from_vm = advise(vm.query_url, at)
    assert (code_v, from_vm["decision"]) == (code_p, from_prom["decision"]) == EXPECTED[moment]
    assert from_vm == from_prom


def test_advise_on_a_pair_neither_store_has_is_unknown_in_both(prom, vm, week):
    (code_p, from_prom), (code_v, from_vm) = (advise(url, week.at(6, 8), pair="ETHUSD")
                                              for url in (prom.url, vm.query_url))
    assert code_p == code_v == 3
    assert from_vm["reasons"] == [r.replace(prom.url, vm.query_url) for r in from_prom["reasons"]]


# ------------------------------------------------------------------------------------------------- TLS, auth, prefix

def secure_flags(pki, secrets, password: str = "password") -> list[str]:
    return ["--prometheus-ca-file", str(pki.ca), "--prometheus-username", USER,
            "--prometheus-password-file", secrets[password]]


def test_behind_tls_basic_auth_and_a_path_prefix_the_answers_are_the_same(prom, vm_secure, week, pki, secrets, caplog):
    caplog.set_level(logging.DEBUG)
    assert vm_secure.query_url.startswith("https://") and vm_secure.query_url.endswith("/select/0/prometheus")
    flags = secure_flags(pki, secrets)
    same_report(baseline(prom.url, week, "--pair", "XDGUSD,XBTUSD"),
                baseline(vm_secure.query_url, week, "--pair", "XDGUSD,XBTUSD", *flags))
    for moment in ("frozen", "wait in caution", "add in normal"):
        at = moments(week)[moment]
        assert advise(vm_secure.query_url, at, *flags) == advise(prom.url, at)
    code, table, err = run("baseline", "--prometheus", vm_secure.query_url, "--pair", "XDGUSD", "--end",
                           str(week.end), *flags)
    assert code == 0 and table.startswith(f"Baseline from {vm_secure.query_url}, ")
    no_secret(table, err, caplog.text)


def test_a_wrong_password_is_unknown_in_one_line_without_the_password(vm_secure, week, pki, secrets, caplog):
    caplog.set_level(logging.DEBUG)
    for command in ("advise", "baseline"):
        line = one_line_unknown(command, vm_secure.query_url, *secure_flags(pki, secrets, "wrong"), week=week)
        assert line.endswith(f"Prometheus at {vm_secure.query_url} refused the credentials given (HTTP 401).")
        assert "not-" + PASSWORD not in line
    line = one_line_unknown("advise", vm_secure.query_url, "--prometheus-ca-file", str(pki.ca), week=week)
    assert "asks for credentials (HTTP 401): give --prometheus-username and --prometheus-password-file" in line
    no_secret(caplog.text)
    assert "not-" + PASSWORD not in caplog.text


def test_a_certificate_that_does_not_verify_is_unknown_and_says_which_flag_gives_the_ca(vm_secure, week, secrets):
    other = make_pki(Path(secrets["password"]).parent / "other-pki")
    for ca in ([], ["--prometheus-ca-file", str(other.ca)]):
        line = one_line_unknown("advise", vm_secure.query_url, *ca, "--prometheus-username", USER,
                                "--prometheus-password-file", secrets["password"], week=week)
        assert f"Cannot verify the TLS certificate of Prometheus at {vm_secure.query_url}" in line
        assert line.endswith("give the CA that signed it with --prometheus-ca-file.")


def test_the_ca_file_wins_over_requests_ca_bundle_which_would_replace_a_sessions_ca(vm_secure, week, pki, secrets,
                                                                                     monkeypatch):
    other = make_pki(Path(secrets["password"]).parent / "bundle-pki")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other.ca))
    # what `requests` does with a CA set on the session only: the environment's bundle replaces it
    session = requests.Session()
    session.verify, session.auth = str(pki.ca), (USER, PASSWORD)
    with pytest.raises(requests.exceptions.SSLError):
        session.get(vm_secure.url + "/health", timeout=10)
    # the flag is passed with every request, so it wins
    code, body = advise(vm_secure.query_url, week.at(6, 8), *secure_flags(pki, secrets))
    assert (code, body["decision"]) == (0, "add_slot")
    # without the flag the environment's bundle is used, as requests documents (here: the wrong CA)
    line = one_line_unknown("advise", vm_secure.query_url, "--prometheus-username", USER,
                            "--prometheus-password-file", secrets["password"], week=week)
    assert "Cannot verify the TLS certificate" in line
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))
    code, body = advise(vm_secure.query_url, week.at(6, 8), "--prometheus-username", USER,
                        "--prometheus-password-file", secrets["password"])
    assert (code, body["decision"]) == (0, "add_slot")


def test_a_bearer_token_through_vmauth_reads_the_same_week(prom, vmauth, week, secrets, caplog):
    caplog.set_level(logging.DEBUG)
    token = ("--prometheus-bearer-token-file", secrets["token"])
    same_report(baseline(prom.url, week, "--pair", "XDGUSD"), baseline(vmauth.query_url, week, "--pair", "XDGUSD", *token))
    at = moments(week)["wait after stop"]
    assert advise(vmauth.query_url, at, *token) == advise(prom.url, at)
    line = one_line_unknown("advise", vmauth.query_url, "--prometheus-bearer-token-file", secrets["wrong_token"],
                            week=week)
    # vmauth answers an unknown token with 400 and echoes it: nothing the store said is shown
    assert line.endswith(f"Prometheus at {vmauth.query_url} refused the credentials given (HTTP 400)."), line
    assert "not-" + TOKEN not in line
    no_secret(caplog.text)
    assert "not-" + TOKEN not in caplog.text


def test_a_wrong_basic_auth_password_through_vmauth_shows_neither_it_nor_its_base64(prom, vm, week, tmp, secrets,
                                                                                       caplog):
    """vmauth echoes a wrong basic-auth credential as `"Basic <base64 of user:password>"` (HTTP 400): one
    `base64 -d` from the password, a near miss of the right one."""
    caplog.set_level(logging.DEBUG)
    gate = VmAuth(tmp, vm.url, basic=(USER, PASSWORD))
    try:
        (tmp / "last-quarter").write_text(PASSWORD[:-1] + "X\n")
        at = moments(week)["add in normal"]
        right = ("--prometheus-username", USER, "--prometheus-password-file", secrets["password"])
        assert advise(gate.query_url, at, *right) == advise(prom.url, at)  # the gate lets the right one through
        wrong = ("--prometheus-username", USER, "--prometheus-password-file", str(tmp / "last-quarter"))
        encoded = base64.b64encode(f"{USER}:{PASSWORD[:-1]}X".encode()).decode()
        assert encoded in requests.get(gate.query_url + "/api/v1/query", params={"query": "1"},
                                       auth=(USER, PASSWORD[:-1] + "X"), timeout=10).text  # vmauth does echo it
        for command in ("advise", "baseline"):
            line = one_line_unknown(command, gate.query_url, *wrong, week=week)
            assert line.endswith(f"Prometheus at {gate.query_url} refused the credentials given (HTTP 400)."), line
            assert encoded not in line and encoded[:-4] not in line and PASSWORD[:-1] not in line
        assert encoded not in caplog.text and PASSWORD[:-1] not in caplog.text
    finally:
        gate.stop()


def test_a_client_certificate_opens_a_prometheus_that_demands_one(prom, prom_mtls, week, pki, secrets):
    flags = [*secure_flags(pki, secrets), "--prometheus-cert-file", str(pki.client_cert),
             "--prometheus-key-file", str(pki.client_key)]
    at = moments(week)["stop"]
    code, body = advise(prom_mtls.url, at, *flags)
    assert (code, body) == advise(prom.url, at)
    assert baseline(prom_mtls.url, week, "--pair", "XDGUSD", "--days", "2", *flags)["pairs"] == \
        baseline(prom.url, week, "--pair", "XDGUSD", "--days", "2")["pairs"]
    line = one_line_unknown("advise", prom_mtls.url, *secure_flags(pki, secrets), week=week)
    assert "asks for a client certificate it trusts (--prometheus-cert-file and --prometheus-key-file)" in line
    intruder = ["--prometheus-cert-file", str(pki.other_client_cert), "--prometheus-key-file", str(pki.other_client_key)]
    line = one_line_unknown("advise", prom_mtls.url, *secure_flags(pki, secrets), *intruder, week=week)
    assert "asks for a client certificate it trusts" in line


def test_an_unreachable_store_is_unknown_in_one_line(week):
    url = f"http://127.0.0.1:{free_port()}/prometheus"
    for command in ("advise", "baseline"):
        line = one_line_unknown(command, url, week=week)
        assert line.endswith(f"Cannot reach Prometheus at {url}: Connection refused.")


# ------------------------------------------------------------------------------------------------- headers, endpoints

QUERY_API = ("/api/v1/query", "/api/v1/query_range", "/api/v1/labels", "/api/v1/series", "/api/v1/status/buildinfo")


def test_every_request_carries_the_tenant_header_and_reads_only_the_query_api(prom, vm, week):
    proxy = RecordingProxy(vm.query_url, prefix="/mimir/prometheus", tenant_header="X-Scope-OrgID")
    try:
        tenant = ("--prometheus-header", "X-Scope-OrgID=kraken-bots")
        same_report(baseline(prom.url, week, "--days", "3"), baseline(proxy.url, week, "--days", "3", *tenant))
        at = moments(week)["wait in caution"]
        assert advise(proxy.url, at, *tenant) == advise(prom.url, at)
        paths = proxy.paths()
        assert paths and all(h.get("X-Scope-OrgID") == "kraken-bots" for _, _, h in proxy.requests)
        api = [p.removeprefix("/mimir/prometheus") for p in paths]
        assert all(p in QUERY_API or p.startswith("/api/v1/label/") and p.endswith("/values") for p in api), api
        assert {"/api/v1/query", "/api/v1/label/pair/values"} <= set(api)
        line = one_line_unknown("advise", proxy.url, week=week)
        assert line.endswith("asks for a tenant (HTTP 401: no org id): give --prometheus-header X-Scope-OrgID=TENANT.")
    finally:
        proxy.stop()


def test_the_advisor_reads_a_bounded_window_and_the_baseline_one_day_per_query(vm, week):
    """What is asked of the store, not just what comes back: the advisor's raw queries and its label lookup span
    72 h + a day; the baseline reads each series a day per query, from the day before its first to its end, so that
    no answer holds more than a day of every pair (the band twice: once for the scrape interval), and the fill
    gauges by instant queries at the day ends."""
    proxy = RecordingProxy(vm.query_url, prefix="/p")
    try:
        at = week.at(6, 8)
        advise(proxy.url, at)
        ranges = [q for _, params, _ in proxy.requests for k, q in params if k == "query" and "[" in q]
        assert ranges and all(q.endswith(f"[{4 * DAY}s]") for q in ranges), ranges
        [labels] = [dict(params) for path, params, _ in proxy.requests if "/label/" in path]
        assert (float(labels["start"]), float(labels["end"])) == (at - 4 * DAY, at)
        proxy.clear()
        baseline(proxy.url, week, "--pair", "XDGUSD", "--days", "2")
        assert {path for path, _, _ in proxy.requests} == {"/p/api/v1/query"}
        raw: dict[str, list[float]] = {}
        fills: dict[str, list[float]] = {}
        for _, params, _ in proxy.requests:
            query, when = dict(params)["query"], float(dict(params)["time"])
            if query.startswith("last_over_time("):
                fills.setdefault(query, []).append(when)
            elif query.endswith(f"[{DAY}s]"):
                raw.setdefault(query, []).append(when)
        days = [week.end - 2 * DAY, week.end - DAY, week.end]
        assert len(raw) == 11  # one per series the baseline reads (8, and the order rate counter's 3 since issue 18)
        assert all(times == (days + days if "status_band" in query else days) for query, times in raw.items()), raw
        assert len(fills) == 2 and all(times == days[1:] for times in fills.values()), fills
        assert all(query.endswith("[300s])") for query in fills)
    finally:
        proxy.stop()
