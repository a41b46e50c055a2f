"""The store flags of `baseline` and `advise`: each bad setting is one line naming the flag, exit 2, before any
request, and no secret in any output. (The flags at work against real stores: tests/test_rollout_stores.py.)"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from exporter import rollout
from exporter.sources.prometheus_history import PrometheusHistory, PrometheusHistoryError
from exporter.sources.store_access import AccessError, StoreAccess
from tests.certs import make_pki
from tests.victoria import RecordingProxy

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
    assert "--prometheus-password-file: cannot read" in err and "No such file" in err
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
