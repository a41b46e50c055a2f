"""`--web-config-file` in exporter-toolkit's format: what loads, what is refused (one line naming the problem, exit 2),
and re-reading when the file changes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.web.web_config import WebConfigError, WebConfigFile, load_web_config
from tests.certs import bcrypt_hash, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tls_block(pki, **extra: str) -> str:
    lines = [f"  cert_file: {pki.server_cert}", f"  key_file: {pki.server_key}"]
    lines += [f"  {k}: {v}" for k, v in extra.items()]
    return "tls_server_config:\n" + "\n".join(lines) + "\n"


def test_a_full_toolkit_config_loads_with_tls_users_and_headers(tmp_path, pki):
    hashed = bcrypt_hash("s3cret")
    path = write(tmp_path / "web.yml", tls_block(pki, client_ca_file=pki.ca, client_auth_type="RequireAndVerifyClientCert",
                                                 min_version="TLS13")
                 + f"basic_auth_users:\n  prometheus: {hashed}\n"
                 + "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=3600\n")
    config = load_web_config(path)
    assert config.tls is not None and config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert config.ssl_context is not None and config.ssl_context.minimum_version.name == "TLSv1_3"
    assert config.users == {"prometheus": hashed.encode()}
    assert config.headers == (("X-Frame-Options", "deny"), ("Strict-Transport-Security", "max-age=3600"))
    assert config.dummy_hash.startswith(b"$2b$04$")  # same cost as the configured user's hash


def test_relative_certificate_paths_are_relative_to_the_config_file(tmp_path, pki):
    path = write(pki.ca.parent / "relative.yml", f"tls_server_config:\n  cert_file: {pki.server_cert.name}\n"
                                                 f"  key_file: {pki.server_key.name}\n")
    assert load_web_config(path).tls.cert_file == pki.server_cert


def test_an_empty_file_means_plain_http_without_auth(tmp_path):
    config = load_web_config(write(tmp_path / "web.yml", ""))
    assert config.tls is None and not config.users and config.headers == ()


def refusal(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "web.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("tls_server_confg:\n  cert_file: x\n", "'tls_server_confg'"),
        ("basic_auth_users:\n  alice: password\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_users:\n  alice: $apr1$abc$0123456789abcdefghijkl\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_users:\n  alice: $2b$10$short\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_users: [alice]\n", "basic_auth_users: expected a mapping"),
        ("http_server_config:\n  headers:\n    Set-Cookie: a=b\n", "'Set-Cookie' cannot be set"),
        ("http_server_config:\n  http3: true\n", "'http3'"),
        ("tls_server_config: [1]\n", "tls_server_config: expected a mapping"),
        ("tls_server_config:\n  key_file: k\n", "missing cert_file"),
        ("key: [unclosed\n", "not valid YAML"),
        ("- a list\n", "web config: expected a mapping"),
        ("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: [TLS13]\n", "tls_server_config.min_version"),
    ],
    ids=["unknown-top-key", "plain-password", "apr1-hash", "short-bcrypt", "users-not-a-map", "forbidden-header",
         "unknown-http-key", "tls-not-a-map", "no-cert-file", "bad-yaml", "not-a-map", "version-not-a-string"],
)
def test_a_bad_config_is_refused_in_one_line_naming_the_problem(tmp_path, text, named):
    assert named in refusal(tmp_path, text)


def test_tls_problems_are_refused_in_one_line(tmp_path, pki):
    assert "'cipher_suites'" in refusal(tmp_path, tls_block(pki, cipher_suites="[TLS_AES_128_GCM_SHA256]"))
    assert "no such file" in refusal(tmp_path, tls_block(pki).replace(str(pki.server_cert), str(tmp_path / "missing.crt")))
    garbage = write(tmp_path / "garbage.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert "does not load" in refusal(tmp_path, tls_block(pki).replace(str(pki.server_cert), str(garbage)))
    mismatch = tls_block(pki).replace(str(pki.server_key), str(pki.client_key))  # the client's key: not this cert's
    assert "does not load" in refusal(tmp_path, mismatch)
    assert "RequireAnyClientCert" in refusal(tmp_path, tls_block(pki, client_auth_type="RequireAnyClientCert",
                                                                  client_ca_file=pki.ca))
    assert "needs client_ca_file" in refusal(tmp_path, tls_block(pki, client_auth_type="RequireAndVerifyClientCert"))
    assert "NoClientCert" in refusal(tmp_path, tls_block(pki, client_ca_file=pki.ca))
    assert "min_version" in refusal(tmp_path, tls_block(pki, min_version="SSL3"))
    assert "client_ca_file" in refusal(tmp_path, tls_block(pki, client_auth_type="RequireAndVerifyClientCert",
                                                            client_ca_file=garbage))


def test_an_unreadable_file_is_refused_in_one_line(tmp_path):
    with pytest.raises(WebConfigError, match="cannot read"):
        load_web_config(tmp_path / "absent.yml")
    with pytest.raises(WebConfigError, match="cannot read"):
        load_web_config(tmp_path)  # a directory
    (tmp_path / "latin1.yml").write_bytes(b"basic_auth_users:\n  \xe9: x\n")
    with pytest.raises(WebConfigError, match="cannot read"):
        load_web_config(tmp_path / "latin1.yml")


def test_the_setting_comes_from_the_flag_or_the_environment(tmp_path):
    assert load_config("serve", env={"EXPORTER_WEB_CONFIG_FILE": "/etc/web.yml", "EXPORTER_WEB_IDLE_TIMEOUT": "5",
                                     "EXPORTER_WEB_MAX_CONNECTIONS": "100", "EXPORTER_WEB_THREADS": "4"}) \
        .web_config_file == "/etc/web.yml"
    config = load_config("demo", env={"EXPORTER_WEB_IDLE_TIMEOUT": "5", "EXPORTER_WEB_MAX_CONNECTIONS": "100",
                                      "EXPORTER_WEB_THREADS": "4"})
    assert (config.web_idle_timeout, config.web_max_connections, config.web_threads) == (5.0, 100, 4)
    assert (load_config("demo").web_idle_timeout, load_config("demo").web_max_connections) == (30.0, 2048)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--web-config-file", "{bad}"], "--web-config-file"),
        (["--web-config-file", "{missing}"], "--web-config-file"),
        (["--web-idle-timeout", "0"], "--web-idle-timeout"),
        (["--web-max-connections", "0"], "--web-max-connections"),
        (["--web-threads", "many"], "--web-threads"),
    ],
)
def test_the_command_exits_2_with_one_line_on_a_bad_web_setting(tmp_path, args, named):
    write(tmp_path / "bad.yml", "basic_auth_users:\n  alice: hunter2\n")
    args = [a.format(bad=tmp_path / "bad.yml", missing=tmp_path / "missing.yml") for a in args]
    result = subprocess.run([sys.executable, "-m", "exporter", "demo", "--port", "0", "--duration", "5", *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


@pytest.mark.integration
def test_the_command_serves_behind_the_users_of_its_web_config_file(tmp_path):
    import requests

    from tests.conftest import free_port, wait_for

    web = write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {bcrypt_hash('right')}\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "demo", "--port", str(port), "--duration", "60",
                             "--web-config-file", str(web)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/status"

    def status(auth=None) -> int | None:
        try:
            return requests.get(url, auth=auth, timeout=5).status_code
        except requests.RequestException:
            return None

    try:
        assert wait_for(lambda: status() is not None, timeout=30)
        assert status() == 401
        assert status(("alice", "wrong")) == 401
        assert status(("alice", "right")) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_changed_file_is_reread_and_a_broken_change_keeps_the_previous_version(tmp_path, caplog):
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {bcrypt_hash('one')}\n")
    web = WebConfigFile(path, poll_interval=3600)  # only refresh() looks at the files here
    first = web.current()
    assert set(first.users) == {"alice"}
    write(path, f"basic_auth_users:\n  bob: {bcrypt_hash('two')}\n")
    os.utime(path, ns=(1, 1))  # a different mtime, even on a coarse clock
    assert web.current() is first  # current() reads no file: the request path and the event loop never wait on one
    assert web.refresh() and set(web.current().users) == {"bob"} and web.reload_error is None
    assert not web.refresh()  # unchanged files: nothing to do
    with caplog.at_level(logging.ERROR):
        write(path, "basic_auth_users:\n  carol: not-a-hash\n")
        os.utime(path, ns=(2, 2))
        assert not web.refresh()
        assert set(web.current().users) == {"bob"}  # never fail open, never drop to no auth
    assert "cannot be used" in caplog.text and "keeping the previous one" in caplog.text and "carol" in caplog.text
    assert "basic_auth_users.carol" in web.reload_error
    write(path, f"basic_auth_users:\n  carol: {bcrypt_hash('three')}\n")
    os.utime(path, ns=(3, 3))
    assert web.refresh() and set(web.current().users) == {"carol"} and web.reload_error is None


def test_the_watcher_thread_applies_a_change_without_anyone_asking(tmp_path):
    from tests.conftest import wait_for

    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {bcrypt_hash('one')}\n")
    web = WebConfigFile(path, poll_interval=0.05)
    try:
        write(path, f"basic_auth_users:\n  bob: {bcrypt_hash('two')}\n")
        os.utime(path, ns=(1, 1))
        assert wait_for(lambda: set(web.current().users) == {"bob"}, timeout=10)
        assert web.reloads == 1
    finally:
        web.close()


def test_the_watcher_loads_a_change_only_once_the_files_have_settled(tmp_path):
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {bcrypt_hash('one')}\n")
    web = WebConfigFile(path, poll_interval=3600)  # the test plays the watcher: poll() is what it calls
    write(path, "")  # caught halfway through a rewrite: as it stands, a file without users (no auth at all)
    os.utime(path, ns=(1, 1))
    assert not web.poll() and set(web.current().users) == {"alice"}
    write(path, f"basic_auth_users:\n  bob: {bcrypt_hash('two')}\n")
    os.utime(path, ns=(2, 2))
    assert not web.poll() and set(web.current().users) == {"alice"}  # changed since the last poll: wait
    assert web.poll() and set(web.current().users) == {"bob"}  # the same at two polls: loaded
    assert web.reloads == 1  # the empty version was never in force


def test_turning_tls_on_or_off_by_a_reload_is_refused_whole_and_named(tmp_path, pki, caplog):
    plain = write(tmp_path / "plain.yml", f"basic_auth_users:\n  alice: {bcrypt_hash('one')}\n")
    web = WebConfigFile(plain, poll_interval=3600)
    with caplog.at_level(logging.ERROR):
        write(plain, tls_block(pki) + f"basic_auth_users:\n  bob: {bcrypt_hash('two')}\n")
        os.utime(plain, ns=(1, 1))
        assert not web.refresh()
    assert web.current().tls is None and set(web.current().users) == {"alice"}  # the users did not change either
    assert web.reload_error is not None and "tls_server_config" in web.reload_error and "restart" in web.reload_error
    assert "tls_server_config" in caplog.text
    secure = write(tmp_path / "secure.yml", tls_block(pki))
    web = WebConfigFile(secure, poll_interval=3600)
    write(secure, "")
    os.utime(secure, ns=(1, 1))
    assert not web.refresh() and web.current().tls is not None and "tls_server_config" in web.reload_error


def test_the_dummy_hash_is_kept_while_the_highest_cost_is_unchanged(tmp_path):
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {bcrypt_hash('one', cost=5)}\n")
    first = load_web_config(path)
    write(path, f"basic_auth_users:\n  alice: {bcrypt_hash('one', cost=4)}\n  bob: {bcrypt_hash('two', cost=5)}\n")
    same_cost = load_web_config(path, previous=first)
    assert same_cost.dummy_hash == first.dummy_hash  # no new hash: a reload does no bcrypt work
    write(path, f"basic_auth_users:\n  alice: {bcrypt_hash('one', cost=6)}\n")
    higher = load_web_config(path, previous=same_cost)
    assert higher.dummy_hash != first.dummy_hash and higher.dummy_hash.startswith(b"$2b$06$")


def test_the_docs_web_config_and_prometheus_job_are_the_ones_tested(tmp_path, pki):
    import re

    import yaml

    security = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    section = security.split("## TLS and basic auth", 1)[1]
    web_text, job_text = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)[:2]
    for name, path in (("exporter.crt", pki.server_cert), ("exporter.key", pki.server_key), ("clients-ca.crt", pki.ca)):
        web_text = web_text.replace(name, str(path))
    config = load_web_config(write(tmp_path / "web.yml", web_text))
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert" and set(config.users) == {"prometheus"}
    job = yaml.safe_load(job_text)[0]
    assert job["scheme"] == "https" and {"ca_file", "cert_file", "key_file"} <= set(job["tls_config"])
    assert job["basic_auth"]["username"] == "prometheus"


def test_an_edit_landing_while_a_reload_reads_the_file_is_applied_by_the_next_look(tmp_path, monkeypatch):
    from exporter.web import web_config

    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {bcrypt_hash('one')}\n")
    web = WebConfigFile(path, poll_interval=3600)  # the test plays the watcher
    real_safe_load = web_config.yaml.safe_load
    edits: list[str] = []

    def edited_meanwhile(text):
        parsed = real_safe_load(text)
        if not edits:  # the file changes again right after the reload has read it
            edits.append("carol")
            write(path, f"basic_auth_users:\n  carol: {bcrypt_hash('three')}\n")
            os.utime(path, ns=(2, 2))
        return parsed

    monkeypatch.setattr(web_config.yaml, "safe_load", edited_meanwhile)
    write(path, f"basic_auth_users:\n  bob: {bcrypt_hash('two')}\n")
    os.utime(path, ns=(1, 1))
    assert web.refresh() and set(web.current().users) == {"bob"}  # the version it read
    assert web.refresh() and set(web.current().users) == {"carol"}  # the newer file is not taken for loaded
    assert web.reloads == 2 and not web.refresh()


def test_a_certificate_replaced_while_a_reload_loads_it_is_loaded_again_by_the_next_look(tmp_path, pki, monkeypatch):
    from exporter.web import web_config

    path = write(tmp_path / "web.yml", tls_block(pki))
    web = WebConfigFile(path, poll_interval=3600)
    real_context = web_config._context
    replaced: list[int] = []

    def replaced_meanwhile(tls):
        if not replaced:  # the certificate is renewed while the reload builds its SSL context
            replaced.append(1)
            os.utime(pki.server_cert, ns=(5, 5))
        return real_context(tls)

    monkeypatch.setattr(web_config, "_context", replaced_meanwhile)
    write(path, tls_block(pki, min_version="TLS13"))
    os.utime(path, ns=(1, 1))
    assert web.refresh() and web.current().tls.min_version == "TLS13"
    loaded = web.current()
    assert web.refresh() and web.current() is not loaded  # the renewed certificate is read
    assert not web.refresh()


def test_a_minimum_tls_version_above_the_maximum_is_refused_in_one_line(tmp_path, pki):
    assert "min_version TLS13 is above max_version TLS12" in refusal(
        tmp_path, tls_block(pki, min_version="TLS13", max_version="TLS12"))
    assert "min_version TLS12 is above max_version TLS11" in refusal(tmp_path, tls_block(pki, max_version="TLS11"))
    assert load_web_config(write(tmp_path / "same.yml", tls_block(pki, min_version="TLS13", max_version="TLS13"))).tls


def test_the_command_exits_2_on_a_minimum_tls_version_above_the_maximum(tmp_path, pki):
    path = write(tmp_path / "web.yml", tls_block(pki, min_version="TLS13", max_version="TLS12"))
    result = subprocess.run([sys.executable, "-m", "exporter", "demo", "--port", "0", "--duration", "5",
                             "--web-config-file", str(path)], capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "min_version" in lines[0], result.stderr


def test_a_reload_to_a_minimum_tls_version_above_the_maximum_is_refused_and_named(tmp_path, pki, caplog):
    path = write(tmp_path / "web.yml", tls_block(pki, max_version="TLS13"))
    web = WebConfigFile(path, poll_interval=3600)
    with caplog.at_level(logging.ERROR):
        write(path, tls_block(pki, min_version="TLS13", max_version="TLS12"))
        os.utime(path, ns=(1, 1))
        assert not web.refresh()
    tls = web.current().tls
    assert (tls.min_version, tls.max_version) == ("TLS12", "TLS13")  # the previous version stays in force
    assert "min_version TLS13 is above max_version TLS12" in web.reload_error
    assert "min_version" in caplog.text


def test_the_dummy_hashes_below_the_highest_cost_are_kept_while_the_costs_are_unchanged(tmp_path):
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {bcrypt_hash('one', cost=4)}\n"
                                       f"  bob: {bcrypt_hash('two', cost=6)}\n")
    first = load_web_config(path)
    assert sorted(first.dummy_hashes) == [4, 5, 6]  # one per cost from the lowest to the highest in use
    assert all(hashed.startswith(f"$2b$0{cost}$".encode()) for cost, hashed in first.dummy_hashes.items())
    write(path, f"basic_auth_users:\n  alice: {bcrypt_hash('one', cost=4)}\n  bob: {bcrypt_hash('three', cost=6)}\n")
    assert load_web_config(path, previous=first).dummy_hashes == first.dummy_hashes  # no bcrypt work on a reload
