"""TLS, mutual TLS and basic auth from `--web-config-file`, over real connections, and a real Prometheus scraping
through them (`scheme: https`, `tls_config`, `basic_auth`). Certificates are made by the test."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import threading
from pathlib import Path

import pytest
import requests
import yaml

from exporter.web import auth
from exporter.web.app import HttpSettings, WebConfigFile, create_app, start_server
from tests.certs import bcrypt_hash, make_pki
from tests.conftest import closed_by_server, free_port, require_binary, wait_for
from tests.harness import Prometheus

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
ENDPOINTS = ["/metrics", "/api/status", "/healthz", "/livez", "/", "/card", "/runbooks", "/no/such/route"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def web_yml(pki, path: Path, users: dict[str, str] | None = None, mutual: bool = False) -> Path:
    config: dict = {"tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}}
    if mutual:
        config["tls_server_config"].update(client_ca_file=str(pki.ca), client_auth_type="RequireAndVerifyClientCert")
    if users:
        config["basic_auth_users"] = users
    config["http_server_config"] = {"headers": {"X-Content-Type-Options": "nosniff"}}
    path.write_text(yaml.safe_dump(config))
    return path


def serve(exporter, web_path: Path, settings: HttpSettings | None = None):
    web = WebConfigFile(web_path)
    return start_server(create_app(exporter, web), settings=settings, tls=web.ssl_context())


@pytest.fixture
def secured(exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD").set_internal_counts(active_orders=3, slot_count=1)
    path = web_yml(pki, tmp_path / "web.yml", users={"prometheus": bcrypt_hash(PASSWORD)})
    server = serve(exporter, path)
    yield server, path
    server.stop()


def test_the_server_speaks_https_with_the_configured_certificate_and_headers(secured, pki):
    server, _ = secured
    assert server.url.startswith("https://127.0.0.1:")
    reply = requests.get(server.url + "/livez", verify=str(pki.ca), auth=("prometheus", PASSWORD), timeout=5)
    assert reply.status_code == 200 and reply.headers["X-Content-Type-Options"] == "nosniff"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.url + "/livez", timeout=5)  # a client that does not trust the CA
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url.replace("https", "http") + "/livez", timeout=5)  # plain HTTP gets nothing


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_needs_the_password_and_says_so_with_a_401(secured, pki, path):
    server, _ = secured
    url = server.url + path
    for credentials in (None, ("prometheus", "wrong"), ("nobody", PASSWORD), ("", "")):
        reply = requests.get(url, verify=str(pki.ca), auth=credentials, timeout=5)
        assert reply.status_code == 401, credentials
        assert reply.headers["WWW-Authenticate"].startswith('Basic realm="kraken-capacity-exporter"')
        assert PASSWORD not in reply.text and "krakenbot_" not in reply.text
    garbled = requests.get(url, verify=str(pki.ca), headers={"Authorization": "Basic !!!not-base64"}, timeout=5)
    assert garbled.status_code == 401
    good = requests.get(url, verify=str(pki.ca), auth=("prometheus", PASSWORD), timeout=5)
    assert good.status_code == (404 if path == "/no/such/route" else 200)


def test_an_unknown_user_costs_one_bcrypt_check_at_the_same_cost_as_a_known_one(secured, pki, monkeypatch):
    server, _ = secured
    calls: list[tuple[bytes, bytes]] = []
    real = auth.bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        calls.append((password, hashed))
        return real(password, hashed)

    monkeypatch.setattr(auth.bcrypt, "checkpw", spy)
    for user in ("prometheus", "nobody"):
        assert requests.get(server.url + "/livez", verify=str(pki.ca), auth=(user, "wrong"), timeout=5).status_code == 401
    (_, known), (_, unknown) = calls
    assert len(calls) == 2
    assert known != unknown and known[:7] == unknown[:7] == b"$2b$04$"  # same algorithm and cost: same work


def test_a_rotated_password_applies_without_a_restart(secured, pki):
    server, path = secured
    config = yaml.safe_load(path.read_text())
    config["basic_auth_users"] = {"prometheus": bcrypt_hash("new password")}
    path.write_text(yaml.safe_dump(config))
    os.utime(path, ns=(10**9, 10**9))

    def status(password: str) -> int:
        return requests.get(server.url + "/metrics", verify=str(pki.ca), auth=("prometheus", password), timeout=5).status_code

    assert wait_for(lambda: status("new password") == 200, timeout=10)
    assert status(PASSWORD) == 401


def test_a_rotated_certificate_is_served_to_new_connections_without_a_restart(exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD")
    copies = tmp_path / "live"
    copies.mkdir()
    cert, key = copies / "server.crt", copies / "server.key"
    shutil.copy(pki.server_cert, cert)
    shutil.copy(pki.server_key, key)
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "live/server.crt", "key_file": "live/server.key"}}))
    server = serve(exporter, path)
    try:
        assert requests.get(server.url + "/livez", verify=str(pki.ca), timeout=5).status_code == 200
        renewed = make_pki(tmp_path / "renewed")  # a new CA, so only the new certificate verifies against it
        shutil.copy(renewed.server_key, key)
        shutil.copy(renewed.server_cert, cert)
        os.utime(cert, ns=(10**9, 10**9))

        def new_certificate_served() -> bool:
            try:
                return requests.get(server.url + "/livez", verify=str(renewed.ca), timeout=5).status_code == 200
            except requests.exceptions.SSLError:
                return False

        assert wait_for(new_certificate_served, timeout=10)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + "/livez", verify=str(pki.ca), timeout=5)
    finally:
        server.stop()


def test_mutual_tls_rejects_a_client_without_a_certificate_or_with_an_untrusted_one(exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD")
    server = serve(exporter, web_yml(pki, tmp_path / "web.yml", mutual=True))
    url = server.url + "/metrics"
    try:
        reply = requests.get(url, verify=str(pki.ca), cert=(str(pki.client_cert), str(pki.client_key)), timeout=5)
        assert reply.status_code == 200 and "krakenbot_open_orders_headroom" in reply.text
        for cert in (None, (str(pki.other_client_cert), str(pki.other_client_key))):
            with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
                requests.get(url, verify=str(pki.ca), cert=cert, timeout=5)
    finally:
        server.stop()


def test_stalled_tls_handshakes_do_not_stop_the_server_from_answering(exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD")
    server = serve(exporter, web_yml(pki, tmp_path / "web.yml"), settings=HttpSettings(idle_timeout=2.0))
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(200)]
    try:
        for _ in range(5):
            assert requests.get(server.url + "/livez", verify=str(pki.ca), timeout=5).status_code == 200
        context = ssl.create_default_context(cafile=str(pki.ca))
        assert wait_for(lambda: all(closed_by_server(s) for s in silent), timeout=20)  # the idle timeout ends them
        with context.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=5),
                                 server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for s in silent:
            s.close()
        server.stop()


def test_connections_waiting_for_their_tls_handshake_count_against_the_connection_limit(exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD")
    server = serve(exporter, web_yml(pki, tmp_path / "web.yml"), settings=HttpSettings(max_connections=5, idle_timeout=30.0))
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(5)]
    try:
        assert wait_for(lambda: server.open_connections == 5, timeout=10)
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        assert wait_for(lambda: closed_by_server(extra), timeout=10)  # the 6th is refused before any handshake
        extra.close()
        assert not any(closed_by_server(s) for s in silent)
    finally:
        for s in silent:
            s.close()
        server.stop()


def test_real_prometheus_scrapes_through_mutual_tls_and_basic_auth_only_with_the_right_password(exporter, pki, tmp_path):
    binary = require_binary("prometheus")
    exporter.add_pair("XDGUSD").set_internal_counts(active_orders=3, slot_count=1)
    server = serve(exporter, web_yml(pki, tmp_path / "web.yml", users={"prometheus": bcrypt_hash(PASSWORD)}, mutual=True))
    target = f"127.0.0.1:{server.port}"
    tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}

    def job(name: str, password: str) -> dict:
        return {"job_name": name, "scheme": "https", "tls_config": tls,
                "basic_auth": {"username": "prometheus", "password": password},
                "static_configs": [{"targets": [target]}]}

    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
              "scrape_configs": [job("right", PASSWORD), job("wrong", "not the password")]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prom = Prometheus([binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
                       f"--web.listen-address=127.0.0.1:{port}"], f"http://127.0.0.1:{port}", tmp_path / "prometheus.log")
    try:
        prom.wait_ready("/-/ready")
        assert prom.wait_value('up{job="right"}', 1.0) == 1.0
        assert prom.wait_value('up{job="wrong"}', 0.0) == 0.0
        assert prom.wait_value('krakenbot_open_orders_headroom{job="right", pair="XDGUSD"}', 165.0) == 165.0
        assert prom.value('krakenbot_open_orders_headroom{job="wrong"}') is None
        targets = requests.get(f"{prom.url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        wrong = next(t for t in targets if t["labels"]["job"] == "wrong")
        assert "401" in wrong["lastError"]
    finally:
        prom.stop()
        server.stop()


def test_concurrent_requests_with_the_right_password_all_succeed(secured, pki):
    server, _ = secured
    failures: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            for _ in range(20):
                code = session.get(server.url + "/api/status", verify=str(pki.ca), auth=("prometheus", PASSWORD),
                                   timeout=10).status_code
                if code != 200:
                    with lock:
                        failures.append(code)

    threads = [threading.Thread(target=client) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == [] and not any(t.is_alive() for t in threads)


def test_an_embedding_bot_turns_on_tls_and_basic_auth_through_the_public_api_only(pki, tmp_path):
    from prometheus_client import CollectorRegistry

    import exporter as public

    path = web_yml(pki, tmp_path / "web.yml", users={"prometheus": bcrypt_hash(PASSWORD)})
    bot = public.CapacityExporter(registry=CollectorRegistry())
    bot.add_pair("XDGUSD").set_internal_counts(active_orders=3, slot_count=1)
    server = bot.serve("127.0.0.1", 0, web=public.WebConfigFile(path), settings=public.HttpSettings(threads=2))
    try:
        assert isinstance(server, public.RunningServer) and server.url.startswith("https://")
        reply = requests.get(server.url + "/metrics", verify=str(pki.ca), auth=("prometheus", PASSWORD), timeout=10)
        assert reply.status_code == 200 and "krakenbot_open_orders_headroom" in reply.text
        assert requests.get(server.url + "/metrics", verify=str(pki.ca), timeout=10).status_code == 401
    finally:
        server.stop()
    with pytest.raises(public.WebConfigError, match="cannot read"):
        public.WebConfigFile(tmp_path / "missing.yml")
