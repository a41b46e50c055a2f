"""The store flags of `baseline` and `advise`: each bad setting is one line naming the flag, exit 2, before any
request, and no secret in any output. Then what no real store does on demand, from a stub store (a real HTTP server
on 127.0.0.1): credentials echoed, redirects to another host, partial, malformed, slow and huge answers, each one
line and the promised exit code. (The flags at work against real stores: tests/test_rollout_stores.py.)"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from exporter import rollout
from exporter.sources.prometheus_history import PrometheusHistory, PrometheusHistoryError
from exporter.sources.store_access import AccessError, StoreAccess
from exporter.sources.urls import redacted
from tests.certs import make_pki
from tests.conftest import free_port
from tests.victoria import RecordingProxy, StubStore, empty_store, prometheus_json

PASSWORD = "pw-Zq81-never-shown"
TOKEN = "tok-Hh27-never-shown"


@pytest.fixture
def proxy():
    """A store URL that records whatever reaches it (nothing should: bad flags stop before any request)."""
    server = RecordingProxy("http://127.0.0.1:9")
    yield server
    server.stop()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    pki = make_pki(tmp_path / "pki")
    paths = {"password": tmp_path / "password", "token": tmp_path / "token", "empty": tmp_path / "empty",
             "two_lines": tmp_path / "two-lines", "garbage": tmp_path / "garbage.pem",
             "ca": pki.ca, "cert": pki.client_cert, "key": pki.client_key, "other_key": pki.other_client_key}
    paths["password"].write_text(PASSWORD + "\n")
    paths["token"].write_text(TOKEN + "\n")
    paths["empty"].write_text("\n")
    paths["two_lines"].write_text(f"{PASSWORD}\nsecond line\n")
    paths["garbage"].write_text("not a certificate\n")
    return paths


def run(command: str, *args: str) -> tuple[int, str, str]:
    """`command` with `args`; `--format text` means each command's plain text (baseline's `table`)."""
    args = tuple("table" if a == "text" and command == "baseline" and args[i - 1] == "--format" else a
                 for i, a in enumerate(args))
    out, err = io.StringIO(), io.StringIO()
    code = rollout.main(command, list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def bad(proxy: RecordingProxy, *flags: str, fmt: str = "") -> tuple[str, str]:
    """Run both commands with `flags`; each must fail with exit 2, one line, no request and no secret."""
    for command in ("baseline", "advise"):
        args = ["--prometheus", proxy.url, *flags, *(["--pair", "XDGUSD"] if command == "advise" else [])]
        if fmt:
            args += ["--format", fmt]
        code, out, err = run(command, *args)
        assert code == 2, (command, out, err)
        assert err.count("\n") == 1 and err.startswith(f"kraken-capacity-exporter {command}: error: --prometheus"), err
        assert PASSWORD not in out + err and TOKEN not in out + err
        if fmt == "json":
            assert json.loads(out)["exit_code"] == 2
        else:
            assert out == ""
    assert proxy.paths() == []
    return out, err


def test_a_username_without_a_password_file_names_the_missing_flag(proxy, files):
    _, err = bad(proxy, "--prometheus-username", "alice")
    assert "--prometheus-username: needs --prometheus-password-file too" in err
    _, err = bad(proxy, "--prometheus-password-file", str(files["password"]))
    assert "--prometheus-password-file: needs --prometheus-username too" in err


def test_a_password_file_that_is_missing_empty_or_two_lines_is_refused_without_showing_it(proxy, files, tmp_path):
    _, err = bad(proxy, "--prometheus-username", "alice", "--prometheus-password-file", str(tmp_path / "nope"))
    assert "--prometheus-password-file: no such file" in err and "nope" not in err
    # the slip of giving the password itself where its file is expected: the "path" is not shown
    for flag in ("--prometheus-password-file", "--prometheus-bearer-token-file"):
        user = ["--prometheus-username", "alice"] if flag == "--prometheus-password-file" else []
        out, err = bad(proxy, *user, flag, "Correct-Horse-SECRET", fmt="json")
        assert f"{flag}: no such file" in err and "Correct-Horse-SECRET" not in out + err
    _, err = bad(proxy, "--prometheus-username", "alice", "--prometheus-password-file", str(tmp_path))
    assert f"cannot read {tmp_path}: Is a directory" in err  # a path that exists is shown: it is not the secret
    _, err = bad(proxy, "--prometheus-username", "alice", "--prometheus-password-file", str(files["empty"]))
    assert "is empty" in err
    _, err = bad(proxy, "--prometheus-username", "alice", "--prometheus-password-file", str(files["two_lines"]),
                 fmt="json")
    assert "holds more than one line" in err


def test_basic_auth_and_a_bearer_token_together_are_refused(proxy, files):
    _, err = bad(proxy, "--prometheus-username", "alice", "--prometheus-password-file", str(files["password"]),
                 "--prometheus-bearer-token-file", str(files["token"]))
    assert "--prometheus-bearer-token-file: give either a bearer token or --prometheus-username" in err


def test_tls_files_are_checked_before_any_request(proxy, files):
    _, err = bad(proxy, "--prometheus-ca-file", str(files["garbage"]))
    assert "--prometheus-ca-file:" in err and "holds no PEM CA certificate" in err
    _, err = bad(proxy, "--prometheus-cert-file", str(files["cert"]))
    assert "--prometheus-cert-file: needs --prometheus-key-file too" in err
    _, err = bad(proxy, "--prometheus-cert-file", str(files["cert"]), "--prometheus-key-file", str(files["other_key"]))
    assert "are not a PEM certificate and its unencrypted key" in err


def test_headers_must_be_name_equals_value_and_may_not_replace_the_credentials(proxy, files):
    _, err = bad(proxy, "--prometheus-header", "X-Scope-OrgID")
    assert "--prometheus-header: expected NAME=VALUE" in err
    _, err = bad(proxy, "--prometheus-header", "Bad Name=1")
    assert "is not a header name" in err
    _, err = bad(proxy, "--prometheus-header", "X-Scope-OrgID=a", "--prometheus-header", "x-scope-orgid=b")
    assert "one header given twice" in err
    _, err = bad(proxy, "--prometheus-header", f"Authorization=Bearer {TOKEN}",
                 "--prometheus-bearer-token-file", str(files["token"]))
    assert "Authorization would replace the credentials given" in err


def test_the_opened_access_shows_no_secret_in_its_repr_and_scrubs_echoed_ones(files):
    access = StoreAccess(username="alice", password_file=str(files["password"]),
                         headers=(("X-Api-Key", "key-Pp33-secret"), ("X-Scope-OrgID", "tenant-1"))).open()
    shown = repr(access) + repr(access.auth) + repr(access.session().auth)
    assert PASSWORD not in shown and "key-Pp33-secret" not in shown
    echoed = f"bad request: password {PASSWORD}, key key-Pp33-secret, tenant tenant-1"
    assert access.scrub(echoed) == "bad request: password ***, key ***, tenant tenant-1"


def test_store_access_errors_name_the_setting_as_given():
    with pytest.raises(AccessError, match="^password_file: needs username too$"):
        StoreAccess(password_file="/x").open()


def test_a_url_with_a_path_prefix_and_query_parameters_keeps_both_on_every_request(proxy):
    """VictoriaMetrics takes `extra_label=...` on the URL; the client repeats it after its own parameters."""
    client = PrometheusHistory(proxy.url + "/select/0/prometheus/?extra_label=team%3Dbots")
    with pytest.raises(PrometheusHistoryError, match="HTTP 502"):  # the proxy's upstream is closed
        client.label_values("pair", "krakenbot_status_band")
    [(path, params, _)] = proxy.requests
    assert path == "/select/0/prometheus/api/v1/label/pair/values"
    assert params == [("extra_label", "team=bots"), ("match[]", "krakenbot_status_band")]
    assert client.display_url == proxy.url + "/select/0/prometheus/?***"


# ------------------------------------------------------------------------------------------------- URLs

@pytest.mark.parametrize("password", ["Hunter/2SECRET", "Hunter#2SECRET", "Hunter?2SECRET"])
def test_a_url_password_with_a_slash_hash_or_question_mark_is_refused_without_showing_it(proxy, password):
    """Pasted unencoded, such a character ends the URL's authority early: the request would go to another host
    and the password would be shown as part of the path, query or fragment."""
    url = proxy.url.replace("http://", f"http://alice:{password}@") + "/prometheus"
    for command in ("baseline", "advise"):
        for fmt in ("text", "json"):
            code, out, err = run(command, "--prometheus", url, "--pair", "XDGUSD", "--format", fmt)
            assert code == 2 and err.count("\n") == 1, (command, fmt, err)
            assert err.startswith(f"kraken-capacity-exporter {command}: error: --prometheus: an '@' after the host")
            assert "Hunter" not in out + err and "2SECRET" not in out + err
            assert json.loads(out)["exit_code"] == 2 if fmt == "json" else out == ""
    assert proxy.paths() == []


@pytest.mark.parametrize("url", ["http://[::1:9090/prometheus", "http://bot:9o9o/prometheus", "bot:9090",
                                 "http:///prometheus"])
def test_a_url_that_does_not_parse_is_a_bad_flag_in_one_line(url):
    for fmt in ("text", "json"):
        code, out, err = run("advise", "--prometheus", url, "--pair", "XDGUSD", "--format", fmt)
        assert code == 2 and err.count("\n") == 1 and "error: --prometheus: " in err, err
        assert json.loads(out)["exit_code"] == 2 if fmt == "json" else out == ""


def test_redacted_cuts_the_user_information_at_the_last_at_of_the_raw_url():
    assert redacted("http://alice:Hunter/2SECRET@127.0.0.1:9/prometheus") == "http://***@127.0.0.1:9/prometheus"
    assert redacted("http://alice:Hunter#2SECRET@vm:8428/prometheus?x=1") == "http://***@vm:8428/prometheus?***"
    assert redacted("https://alice:Hunter?2SECRET@vm/p") == "https://***@vm/p"
    assert redacted("http://vm:8428/prometheus") == "http://vm:8428/prometheus"
    assert redacted("http://[::1:9090/p") == "<unparsable URL>" and redacted("alice:pw@vm") == "<unparsable URL>"


# ------------------------------------------------------------------------------------------------- headers

def test_a_curl_style_header_is_sent_and_a_malformed_one_refused_without_showing_any_of_it(proxy):
    store = StubStore()
    try:
        credential = "Basic cmVhZGVyOlJpZ2h0LVB3LTIwMjM="
        code, _, err = run("advise", "--prometheus", store.url, "--pair", "XDGUSD", "--at", "1700000000",
                           "--prometheus-header", f"Authorization: {credential}")
        assert code == 3 and credential not in err  # no band sample in the stub: unknown, after asking
        assert set(store.headers("Authorization")) == {credential.encode()}
    finally:
        store.stop()
    for header in ("Authorization Basic cmVhZGVyOlJpZ2h0LVB3LTIwMjM=", "X-Api-Key k3y-SECRET==", "k3y-SECRET"):
        out, err = bad(proxy, "--prometheus-header", header, fmt="json")
        assert "--prometheus-header: expected NAME=VALUE" in err
        assert "cmVhZGVyOlJpZ2h0LVB3LTIwMjM" not in out + err and "k3y-SECRET" not in out + err


# ------------------------------------------------------------------------------------------------- the environment

def test_netrc_neither_adds_credentials_nor_replaces_the_ones_given(tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-SECRET\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    store = StubStore()
    try:
        requests.get(store.url + "/-/healthy", timeout=10)  # what requests does on its own with this HOME
        assert store.headers("Authorization") == [b"Basic " + base64.b64encode(b"netrc-user:netrc-SECRET")]
        store.requests.clear()
        run("advise", "--prometheus", store.url, "--pair", "XDGUSD", "--at", "1700000000")
        assert store.requests and set(store.headers("Authorization")) == {None}
        store.requests.clear()
        run("advise", "--prometheus", store.url, "--pair", "XDGUSD", "--at", "1700000000",
            "--prometheus-header", "Authorization=Bearer GIVEN-token")
        assert store.requests and set(store.headers("Authorization")) == {b"Bearer GIVEN-token"}
    finally:
        store.stop()


def test_the_proxy_variables_are_still_followed_as_requests_would(monkeypatch):
    proxy_store = StubStore()  # answers as a store: a proxy forwarding to one
    try:
        target = f"http://127.0.0.1:{free_port()}/prometheus"  # nothing listens there
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_store.url)
        code, _, _ = run("baseline", "--prometheus", target, "--pair", "XDGUSD", "--end", "1700000000",
                         "--days", "1")
        assert code == 0 and proxy_store.requests
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        code, _, err = run("baseline", "--prometheus", target, "--pair", "XDGUSD", "--end", "1700000000")
        assert code == 3 and "Connection refused" in err
    finally:
        proxy_store.stop()


def test_a_ca_bundle_variable_pointing_nowhere_is_a_bad_setting_that_names_it(monkeypatch, tmp_path):
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "missing-ca.pem"))
    for fmt in ("text", "json"):
        code, out, err = run("advise", "--prometheus", f"https://127.0.0.1:{free_port()}", "--pair", "XDGUSD",
                             "--format", fmt)
        assert code == 2 and err.count("\n") == 1, err
        assert "error: CURL_CA_BUNDLE: " in err and "--prometheus-ca-file" in err
        assert json.loads(out)["exit_code"] == 2 if fmt == "json" else out == ""
    # over plain http no CA is used: the variable is not in the way
    code, _, err = run("advise", "--prometheus", f"http://127.0.0.1:{free_port()}", "--pair", "XDGUSD")
    assert code == 3 and "Cannot reach Prometheus" in err


# ------------------------------------------------------------------------------------------------- credentials

@pytest.mark.parametrize("flags, header, sent", [
    (["--prometheus-username", "ü", "--prometheus-password-file", "s3cr€t-pass"], "Authorization",
     b"Basic " + base64.b64encode("ü:s3cr€t-pass".encode())),
    (["--prometheus-bearer-token-file", "tok€n-value"], "Authorization", "Bearer tok€n-value".encode()),
    (["--prometheus-header", "X-Scope-OrgID=équipe→1"], "X-Scope-OrgID", "équipe→1".encode()),
], ids=["basic auth", "bearer token", "header"])
def test_credentials_beyond_latin_1_go_out_as_utf_8_as_go_clients_send_them(tmp_path, flags, header, sent):
    flags = list(flags)
    if flags[-2].endswith("-file"):
        (tmp_path / "secret").write_text(flags[-1] + "\n", encoding="utf-8")
        flags[-1] = str(tmp_path / "secret")
    store = StubStore()
    try:
        for fmt in ("text", "json"):
            code, out, err = run("baseline", "--prometheus", store.url, "--pair", "XDGUSD", "--end", "1700000000",
                                 "--days", "1", "--format", fmt, *flags)
            assert code == 0 and "Traceback" not in err, err
        assert store.requests and set(store.headers(header)) == {sent}
    finally:
        store.stop()


def test_a_store_that_echoes_a_wrong_basic_auth_credential_has_none_of_it_shown(tmp_path):
    """vmauth answers a wrong basic-auth password with HTTP 400 and `"Basic <base64 of user:password>"`: one
    `base64 -d` from the password (the real one: tests/test_rollout_stores.py)."""
    (tmp_path / "pw").write_text("Right-Pw-2023\n")
    encoded = base64.b64encode(b"reader:Right-Pw-2023").decode()
    store = StubStore(lambda path, params, headers: (
        400, {}, f'cannot find the provided auth token "Basic {encoded}" in config\n'.encode()))
    try:
        for command, extra in (("advise", ["--pair", "XDGUSD"]), ("baseline", [])):
            for fmt in ("text", "json"):
                code, out, err = run(command, "--prometheus", store.url, *extra, "--format", fmt,
                                     "--prometheus-username", "reader", "--prometheus-password-file",
                                     str(tmp_path / "pw"))
                assert code == 3 and err.count("\n") == 1
                assert err.strip().endswith(f"Prometheus at {store.url} refused the credentials given (HTTP 400).")
                assert encoded not in out + err and "Right-Pw-2023" not in out + err and "Basic" not in out + err
    finally:
        store.stop()


def test_scrub_takes_out_basic_and_bearer_credentials_and_the_encoded_password(files):
    access = StoreAccess(username="alice", password_file=str(files["password"])).open(tls=False)
    encoded = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert access.scrub(f"saw {encoded}; bad 'Basic QWxhZGRpbjpvcGVu' and Authorization: bearer abc.def-ghi, ok") == \
        "saw ***; bad 'Basic ***' and Authorization: bearer ***, ok"


@pytest.mark.parametrize("flags, leaked", [
    (["--prometheus-username", "u", "--prometheus-password-file", "PW"], "Authorization"),
    (["--prometheus-bearer-token-file", "PW"], "Authorization"),
    (["--prometheus-header", "Authorization=Bearer hdr-REDIRECT-secret"], "Authorization"),
    (["--prometheus-header", "X-Api-Key=key-REDIRECT-secret"], "X-Api-Key"),
], ids=["basic auth", "bearer token", "Authorization header", "key header"])
def test_a_redirect_to_another_host_carries_no_credential(tmp_path, flags, leaked):
    (tmp_path / "pw").write_text("pw-REDIRECT-secret\n")
    flags = [str(tmp_path / "pw") if f == "PW" else f for f in flags]
    other = StubStore()  # reached as `localhost`: another host name
    first = StubStore(lambda path, params, headers: (
        307, {"Location": f"http://localhost:{other.port}{path}?{urlencode(params)}"}, b""))
    try:
        run("advise", "--prometheus", first.url, "--pair", "XDGUSD", "--at", "1700000000",
            "--prometheus-header", "X-Scope-OrgID=tenant-1", *flags)
        assert first.headers(leaked)[0] is not None  # sent where it was given
        assert other.requests, "the redirect was not followed"
        assert set(other.headers(leaked)) == {None}
        assert set(other.headers("X-Scope-OrgID")) == {b"tenant-1"}  # a tenant is no credential: it follows
    finally:
        first.stop()
        other.stop()


# ------------------------------------------------------------------------------------------------- answers

def _with(extra: dict) -> Callable:
    """The empty store's answers with `extra` top-level keys (warnings, isPartial)."""
    def answer(path: str, params: dict[str, str], headers: dict[str, bytes]) -> tuple[int, dict[str, str], bytes]:
        status, kind, body = empty_store(path, params)
        return status, kind, json.dumps({**json.loads(body), **extra}).encode()
    return answer


@pytest.mark.parametrize("extra, said", [
    ({"warnings": ["remote_read: Post \"http://b:9090/api/v1/read\": dial tcp: connect: connection refused"]},
     "remote_read: Post"),
    ({"isPartial": True}, "isPartial: true"),
], ids=["warnings (Prometheus, Thanos, Mimir)", "isPartial (VictoriaMetrics cluster)"])
def test_a_partial_answer_is_unknown_not_a_week_without_data(extra, said):
    store = StubStore(_with(extra))
    try:
        for command, extra_flags in (("baseline", ["--end", "1700000000"]), ("advise", ["--pair", "XDGUSD"])):
            for fmt in ("text", "json"):
                code, out, err = run(command, "--prometheus", store.url, *extra_flags, "--format", fmt)
                assert code == 3 and err.count("\n") == 1, (command, err)
                assert "only in part (" + said in err and "cannot be told from what the store does not hold" in err
                if fmt == "json":
                    body = json.loads(out)
                    assert (body["error"] if command == "baseline" else body["reasons"][0]) in err
    finally:
        store.stop()


def test_promql_info_notes_do_not_make_an_answer_partial():
    store = StubStore(_with({"warnings": ["PromQL info: metric might not be a counter, name does not end in _total"]}))
    try:
        code, out, _ = run("baseline", "--prometheus", store.url, "--end", "1700000000", "--format", "json")
        assert code == 0 and list(json.loads(out)["pairs"]) == ["XDGUSD"]
    finally:
        store.stop()


def _band_matrix(points: list) -> Callable:
    """A store whose raw band samples are `points` (as given, in whatever shape), everything else empty."""
    def answer(path: str, params: dict[str, str], headers: dict[str, bytes]) -> tuple[int, dict[str, str], bytes]:
        if params.get("query", "").startswith("krakenbot_status_band{"):
            return prometheus_json({"resultType": "matrix", "result": [
                {"metric": {"__name__": "krakenbot_status_band", "pair": "XDGUSD"}, "values": points}]})
        return empty_store(path, params)
    return answer


def test_staleness_markers_and_other_non_finite_values_are_left_out():
    """VictoriaMetrics returns the staleness marker a stopped exporter leaves as a NaN sample (Prometheus leaves it
    out); JSON has no NaN, and a NaN is no band."""
    store = StubStore(_band_matrix([[1699999990, "0"], [1699999995, "NaN"], [1699999996, "+Inf"]]))
    try:
        code, out, _ = run("advise", "--prometheus", store.url, "--pair", "XDGUSD", "--at", "1700000000",
                           "--format", "json")
        assert (code, json.loads(out)["band"]) == (0, "normal")
        code, out, _ = run("baseline", "--prometheus", store.url, "--pair", "XDGUSD", "--end", "1700000000",
                           "--days", "1", "--format", "json")
        report = json.loads(out, parse_constant=lambda token: pytest.fail(f"bare {token} in the JSON"))
        assert code == 0 and report["pairs"]["XDGUSD"]["days"][0]["seconds_in_band"] is None  # one sample: no step
    finally:
        store.stop()


def test_time_stamps_written_as_numeric_strings_are_read_as_numbers():
    store = StubStore(_band_matrix([["1699999880", "1"], ["1699999940.5", "1"]]))
    try:
        code, out, _ = run("advise", "--prometheus", store.url, "--pair", "XDGUSD", "--at", "1700000000",
                           "--format", "json")
        assert (code, json.loads(out)["band"]) == (0, "caution")
    finally:
        store.stop()


def _vector_without_value(path: str, params: dict[str, str], headers: dict[str, bytes]) -> tuple:
    if "fill_duration_median" in params.get("query", ""):
        return prometheus_json({"resultType": "vector", "result": [{"metric": {"pair": "XDGUSD"}}]})
    return empty_store(path, params)


@pytest.mark.parametrize("command, answer", [
    ("advise", _band_matrix([["noon", "1"]])),
    ("advise", _band_matrix([[1699999990, "1", "extra"]])),
    ("advise", _band_matrix("not a list")),
    ("advise", lambda path, params, headers: prometheus_json({"resultType": "matrix", "result": [{"values": []}]})
     if "/label/" not in path else prometheus_json([["XDGUSD"]])),
    ("baseline", _vector_without_value),
    ("baseline", lambda path, params, headers: prometheus_json({"resultType": "vector", "result": "x"})
     if "fill_duration_median" in params.get("query", "") else empty_store(path, params)),
], ids=["timestamp not a number", "three elements", "values not a list", "label values not strings",
        "vector item without value", "result not a list"])
def test_an_answer_of_the_wrong_shape_is_unknown_in_one_line(command, answer):
    store = StubStore(answer)
    try:
        extra = ["--pair", "XDGUSD", "--at", "1700000000"] if command == "advise" else ["--end", "1700000000"]
        for fmt in ("text", "json"):
            code, out, err = run(command, "--prometheus", store.url, *extra, "--format", fmt)
            assert code == 3 and err.count("\n") == 1 and "Traceback" not in err, err
            assert "unexpected shape" in err or "not a list of strings" in err
            if fmt == "json":
                assert json.loads(out)
    finally:
        store.stop()


def _raw_server(behaviour: Callable[[socket.socket], None]) -> tuple[str, socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=behaviour, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", server


def _chunked(piece: bytes, pause: float, count: int) -> Callable[[socket.socket], None]:
    def behaviour(conn: socket.socket) -> None:
        conn.recv(65536)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(count):
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                time.sleep(pause)
        except OSError:
            pass
        conn.close()
    return behaviour


def test_a_store_that_trickles_its_answer_is_cut_off_at_the_deadline():
    url, server = _raw_server(_chunked(b" ", 0.2, 300))  # a byte every 0.2 s for a minute: never a read timeout
    try:
        client = PrometheusHistory(url, timeout=5, deadline=1.5)
        started = time.monotonic()
        with pytest.raises(PrometheusHistoryError, match=r"did not send its whole answer within 1\.5 s\.$"):
            client.label_values("pair", "krakenbot_status_band")
        assert time.monotonic() - started < 5
    finally:
        server.close()


def test_an_answer_larger_than_the_cap_is_refused_declared_or_not():
    url, server = _raw_server(_chunked(b" " * 65536, 0, 64))  # 4 MiB, chunked: no Content-Length
    store = StubStore(lambda path, params, headers: (200, {"Content-Type": "application/json"}, b" " * (3 << 20)))
    try:
        for where in (url, store.url):
            with pytest.raises(PrometheusHistoryError, match="answered more than 2 MiB: give --pair a group"):
                PrometheusHistory(where, max_bytes=2 << 20).label_values("pair", "krakenbot_status_band")
    finally:
        server.close()
        store.stop()
