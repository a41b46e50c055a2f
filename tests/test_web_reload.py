"""A web config reload applies whole or not at all, and never on the event loop (issue 16, items 2 and 3): real TLS
clients (requests, the ssl module) against the real server, certificates from tests/certs.py."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from exporter.web import web_config
from exporter.web.app import create_app, start_server
from exporter.web.web_config import WebConfigFile
from tests.certs import bcrypt_hash, make_pki
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def write_config(path: Path, pki, client_ca: Path | None = None, users: dict[str, str] | None = None,
                 **tls: str) -> None:
    section: dict = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), **tls}
    if client_ca is not None:
        section.update(client_ca_file=str(client_ca), client_auth_type="RequireAndVerifyClientCert")
    config: dict = {"tls_server_config": section}
    if users:
        config["basic_auth_users"] = users
    path.write_text(yaml.safe_dump(config))
    stamp = time.time_ns() + 10**9  # a new mtime, whatever the clock's granularity
    os.utime(path, ns=(stamp, stamp))


def serve(exporter, path: Path):
    web = WebConfigFile(path)
    return start_server(create_app(exporter, web), tls=web.ssl_context()), web


REFUSED = ("SSLError", "ConnectionError")


def get(url: str, pki, cert=None, session: requests.Session | None = None) -> int | str:
    """The status code, or the name of the exception when the connection is refused."""
    try:
        return (session or requests).get(url, verify=str(pki.ca), cert=cert, timeout=5).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


def tls_connection(port: int, pki, cert: tuple[Path, Path] | None = None,
                   maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.maximum_version = maximum
    if cert is not None:
        context.load_cert_chain(*cert)
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")


def status_over(conn: ssl.SSLSocket, path: str = "/livez") -> int | str:
    """One keep-alive GET on an open TLS connection: its status code, or "closed" when the server closed it."""
    data = b""
    try:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return "closed"
            data += chunk
    except (ssl.SSLError, ConnectionError):
        return "closed"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(65536)
    return int(head.split(b" ", 2)[1])


def test_tightening_to_mutual_tls_refuses_clients_without_a_certificate_at_once_and_keeps_those_with_one(
        exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD")
    path = tmp_path / "web.yml"
    write_config(path, pki)
    server, web = serve(exporter, path)
    url = server.url + "/metrics"
    cert = (str(pki.client_cert), str(pki.client_key))
    without, with_cert = requests.Session(), requests.Session()
    idle = tls_connection(server.port, pki)  # made before the change, without a certificate
    try:
        assert get(url, pki, session=without) == 200 and get(url, pki, cert, session=with_cert) == 200
        assert status_over(idle) == 200
        write_config(path, pki, client_ca=pki.ca)
        assert wait_for(lambda: get(url, pki) != 200, timeout=10)  # a new connection without a certificate
        assert get(url, pki) in REFUSED  # refused in the handshake
        assert web.reloads == 1 and web.reload_error is None
        assert wait_for(lambda: server.open_connections == 0, timeout=10)  # the three made before: closed while idle
        assert status_over(idle) == "closed"
        assert get(url, pki, session=without) in REFUSED  # the session's reconnection is refused
        assert get(url, pki, cert, session=with_cert) == 200  # a client with the right certificate keeps working
        assert get(url, pki, cert) == 200
        health = requests.get(server.url + "/healthz", verify=str(pki.ca), cert=cert, timeout=5).json()
        assert health["web_config"] == {"reload_failed": False}
        assert "krakenbot_web_config_reload_failed 0.0" in requests.get(url, verify=str(pki.ca), cert=cert, timeout=5).text
    finally:
        idle.close()
        without.close()
        with_cert.close()
        server.stop()
        web.close()


def test_a_request_on_a_connection_the_new_tls_config_would_refuse_gets_421_and_the_connection_closes(
        exporter, pki, tmp_path, monkeypatch):
    from exporter.web import server as server_module

    monkeypatch.setattr(server_module, "TLS_REVISIT_SECONDS", 3600.0)  # no closing of idle connections: the request path alone
    exporter.add_pair("XDGUSD")
    path = tmp_path / "web.yml"
    write_config(path, pki)
    server, web = serve(exporter, path)
    stale = tls_connection(server.port, pki)
    try:
        assert status_over(stale) == 200
        write_config(path, pki, client_ca=pki.ca)
        assert wait_for(lambda: get(server.url + "/livez", pki) in REFUSED, timeout=10)
        assert status_over(stale) == 421
        assert status_over(stale) == "closed"
    finally:
        stale.close()
        server.stop()
        web.close()


def test_loosening_from_mutual_tls_lets_clients_without_a_certificate_in_and_keeps_those_with_one(
        exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD")
    path = tmp_path / "web.yml"
    write_config(path, pki, client_ca=pki.ca)
    server, web = serve(exporter, path)
    url = server.url + "/livez"
    cert = (pki.client_cert, pki.client_key)
    kept = tls_connection(server.port, pki, cert)
    try:
        assert get(url, pki) in REFUSED
        assert status_over(kept) == 200
        write_config(path, pki)
        assert wait_for(lambda: get(url, pki) == 200, timeout=10)
        assert status_over(kept) == 200  # the same connection, still served
        assert get(url, pki, (str(pki.client_cert), str(pki.client_key))) == 200
    finally:
        kept.close()
        server.stop()
        web.close()


def test_a_replaced_client_ca_or_a_raised_tls_version_ends_only_the_connections_the_new_config_would_refuse(
        exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD")
    other = make_pki(tmp_path / "other", ca_name="other CA")
    both = tmp_path / "both-cas.crt"
    both.write_bytes(pki.ca.read_bytes() + other.ca.read_bytes())
    path = tmp_path / "web.yml"
    write_config(path, pki, client_ca=both, min_version="TLS12")
    server, web = serve(exporter, path)
    old_ca = tls_connection(server.port, pki, (pki.client_cert, pki.client_key))
    old_version = tls_connection(server.port, pki, (other.client_cert, other.client_key), maximum=ssl.TLSVersion.TLSv1_2)
    kept = tls_connection(server.port, pki, (other.client_cert, other.client_key))
    try:
        assert old_version.version() == "TLSv1.2" and kept.version() == "TLSv1.3"
        assert [status_over(c) for c in (old_ca, old_version, kept)] == [200, 200, 200]
        write_config(path, pki, client_ca=other.ca, min_version="TLS13")
        assert wait_for(lambda: web.reloads == 1, timeout=10)
        assert wait_for(lambda: status_over(old_ca) in (421, "closed"), timeout=5)  # its CA is no longer trusted
        assert wait_for(lambda: status_over(old_version) in (421, "closed"), timeout=5)  # below the new minimum
        assert status_over(kept) == 200  # its CA and version pass the new config: the same connection is kept
        assert get(server.url + "/livez", pki, (str(other.client_cert), str(other.client_key))) == 200
        assert get(server.url + "/livez", pki, (str(pki.client_cert), str(pki.client_key))) in REFUSED
        with pytest.raises(ssl.SSLError):
            tls_connection(server.port, pki, (other.client_cert, other.client_key), maximum=ssl.TLSVersion.TLSv1_2)
    finally:
        for conn in (old_ca, old_version, kept):
            conn.close()
        server.stop()
        web.close()


def test_a_reload_that_turns_tls_off_is_refused_reported_and_the_server_stays_on_tls(exporter, pki, tmp_path):
    exporter.add_pair("XDGUSD")
    path = tmp_path / "web.yml"
    write_config(path, pki, users={"prometheus": bcrypt_hash(PASSWORD)})
    server, web = serve(exporter, path)
    auth = ("prometheus", PASSWORD)
    try:
        path.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": bcrypt_hash("new")}}))
        assert wait_for(lambda: web.reload_error is not None, timeout=10)
        health = requests.get(server.url + "/healthz", verify=str(pki.ca), auth=auth, timeout=5).json()
        assert health["web_config"]["reload_failed"] is True and "tls_server_config" in health["web_config"]["reason"]
        metrics = requests.get(server.url + "/metrics", verify=str(pki.ca), auth=auth, timeout=5).text
        assert "krakenbot_web_config_reload_failed 1.0" in metrics
        assert requests.get(server.url + "/livez", verify=str(pki.ca), auth=("prometheus", "new"), timeout=5).status_code == 401
    finally:
        server.stop()
        web.close()


def handshake(port: int, context: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost"):  # sends a server name (SNI)
        pass


def test_tls_handshakes_complete_while_a_reload_is_held_halfway(exporter, pki, tmp_path, monkeypatch):
    """The reload is stopped inside its load (files read, bcrypt, SSL context) until the handshakes are done: one that
    waited for it would time out, so no wall-clock bound is needed to tell."""
    exporter.add_pair("XDGUSD")
    path = tmp_path / "web.yml"
    write_config(path, pki, users={"prometheus": bcrypt_hash(PASSWORD)})
    web = WebConfigFile(path, poll_interval=0.05)
    server = start_server(create_app(exporter, web), tls=web.ssl_context())
    entered, release = threading.Event(), threading.Event()
    real = web_config.load_web_config

    def held(*args, **kwargs):
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(web_config, "load_web_config", held)
    context = ssl.create_default_context(cafile=str(pki.ca))
    try:
        write_config(path, pki, users={"prometheus": bcrypt_hash("a new one")})
        assert entered.wait(10)  # the watcher is inside the reload now, and stays there
        for _ in range(20):
            handshake(server.port, context)
        assert not release.is_set() and web.reloads == 0  # every handshake happened during the reload
        release.set()
        assert wait_for(lambda: web.reloads == 1, timeout=10)
        assert requests.get(server.url + "/livez", verify=str(pki.ca), auth=("prometheus", "a new one"),
                            timeout=10).status_code == 200
    finally:
        release.set()
        server.stop()
        web.close()


def test_every_tls_handshake_succeeds_while_the_file_keeps_changing(exporter, pki, tmp_path, caplog):
    exporter.add_pair("XDGUSD")
    # two users' sets at different costs: every reload changes the highest cost, so it makes a new dummy hash at
    # cost 12 (a quarter of a second of bcrypt) besides reading the files and building the SSL context
    versions = [{"prometheus": bcrypt_hash(PASSWORD, cost=12)}, {"prometheus": bcrypt_hash(PASSWORD, cost=11)}]
    path = tmp_path / "web.yml"
    write_config(path, pki, users=versions[0])
    web = WebConfigFile(path, poll_interval=0.05)  # looks often: many reloads while the handshakes run
    server = start_server(create_app(exporter, web), tls=web.ssl_context())
    stop = threading.Event()

    def keep_changing() -> None:
        i = 0
        while not stop.wait(0.25):
            i += 1
            write_config(path, pki, users=versions[i % 2])

    context = ssl.create_default_context(cafile=str(pki.ca))
    handshakes: list[float] = []
    changer = threading.Thread(target=keep_changing)
    try:
        with caplog.at_level(logging.INFO, logger="kraken_capacity_exporter.http"):
            changer.start()
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                start = time.perf_counter()
                handshake(server.port, context)  # raises on a failed or timed-out handshake
                handshakes.append(time.perf_counter() - start)
                time.sleep(0.005)
            stop.set()
            changer.join(timeout=10)
        reloads = sum("reloaded" in r.getMessage() for r in caplog.records)
        assert requests.get(server.url + "/livez", verify=str(pki.ca), auth=("prometheus", PASSWORD),
                            timeout=10).status_code == 200
    finally:
        stop.set()
        server.stop()
        web.close()
    handshakes.sort()
    print(f"\nreload under handshakes: {reloads} reloads, {len(handshakes)} handshakes, "
          f"p50 {handshakes[len(handshakes) // 2] * 1000:.1f} ms, max {handshakes[-1] * 1000:.1f} ms")
    assert reloads >= 3  # the file really changed, and was reloaded, while the handshakes ran
