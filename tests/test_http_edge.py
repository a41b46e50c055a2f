"""The HTTP edge under load and abuse, on 127.0.0.1: many clients, idle and slow connections, slowloris, garbage.

Every loop is bounded; waits poll with generous limits; nothing here asserts a duration. The figures printed
(`-s` shows them) are what docs/security.md's "The HTTP edge" reports.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from exporter.web.app import HttpSettings, create_app, start_server
from tests.conftest import closed_by_server, wait_for

pytestmark = pytest.mark.integration

ENDPOINTS = {"/metrics": 200, "/api/status": 200, "/api/status?pair=XBTUSD": 200, "/healthz": 200, "/livez": 200,
             "/": 200}
WORKER_PREFIX = "exporter-http-worker"


def worker_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(WORKER_PREFIX))


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def feed(exporter, clock, stop: threading.Event, limit: int = 200_000) -> Counter:
    """Fire every hook of both pairs in a bounded loop until `stop`: four hook calls a millisecond, far more
    than a bot's poll loop makes."""
    telemetries = [exporter.source(pair) for pair in exporter.pairs]
    fired: Counter = Counter()
    for i in range(limit):
        if stop.wait(0.001):
            break
        t = telemetries[i % len(telemetries)]
        t.set_internal_counts(active_orders=100 + i % 7, recovery_orders=2, slot_count=40)
        t.observe_kraken_count(102 + i % 5)
        t.observe_order_status(f"OLOAD{i}-AAAAA-AAAAAA", "closed", "10", "10", placed_at=clock.now() - 30 - i % 600)
        t.observe_order_status(f"OPART{i}-AAAAA-AAAAAA", "open", "10", "4")
        fired["hook_calls"] += 4
    return fired


@pytest.fixture
def two_pairs(exporter):
    exporter.add_pair("XDGUSD")
    exporter.add_pair("XBTUSD")
    for pair in exporter.pairs:
        exporter.source(pair).set_internal_counts(active_orders=10, slot_count=5)
    return exporter


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"connection: close" not in b"".join(chunks).lower():
                # a complete keep-alive answer: enough
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(body) >= length:
                    break
        return b"".join(chunks)


def test_3000_requests_from_50_clients_to_every_endpoint_while_hooks_fire_have_no_error(two_pairs, clock):
    settings = HttpSettings()
    server = start_server(create_app(two_pairs), settings=settings)
    stop = threading.Event()
    paths = list(ENDPOINTS)
    outcomes: Counter = Counter()
    latencies: list[float] = []
    max_workers = max_open = 0
    lock = threading.Lock()

    def client(n: int) -> None:
        with requests.Session() as session:
            for i in range(60):
                path = paths[(n + i) % len(paths)]
                start = time.perf_counter()
                try:
                    reply = session.get(server.url + path, timeout=30)
                    ok = reply.status_code == ENDPOINTS[path] and len(reply.content) > 0
                    outcome = "ok" if ok else f"HTTP {reply.status_code} {path}"
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                with lock:
                    outcomes[outcome] += 1
                    latencies.append(time.perf_counter() - start)

    try:
        with ThreadPoolExecutor(max_workers=1) as hooks, ThreadPoolExecutor(max_workers=50) as clients:
            fired = hooks.submit(feed, two_pairs, clock, stop)
            futures = [clients.submit(client, n) for n in range(50)]
            while not all(f.done() for f in futures):
                max_workers = max(max_workers, worker_threads())
                max_open = max(max_open, server.open_connections)
                time.sleep(0.01)
            stop.set()
            for f in futures:
                f.result()
            hook_calls = fired.result()["hook_calls"]
    finally:
        stop.set()
        server.stop()
    latencies.sort()
    print(f"\nload: {sum(outcomes.values())} requests, outcomes {dict(outcomes)}, {hook_calls} hook calls meanwhile, "
          f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms, worker threads <= {max_workers}, open connections <= {max_open}")
    assert outcomes == Counter({"ok": 3000})
    assert hook_calls > 0
    assert max_workers <= settings.threads
    assert max_open <= 50


def test_idle_and_slow_connections_are_closed_after_the_idle_timeout(two_pairs):
    server = start_server(create_app(two_pairs), settings=HttpSettings(idle_timeout=1.0))
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    trickling = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    kept_alive = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        kept_alive.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
        assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
        trickling.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        sent = 0
        closed: set[str] = set()

        def all_closed() -> bool:  # one poll: a byte more on the trickling socket, then look at all three
            nonlocal sent
            if "trickling" not in closed:
                try:
                    trickling.send(b"x")  # a byte every poll: never idle, but the head never ends
                    sent += 1
                except OSError:
                    closed.add("trickling")
            for name, sock in (("silent", silent), ("trickling", trickling), ("kept_alive", kept_alive)):
                if name not in closed and closed_by_server(sock):
                    closed.add(name)
            return len(closed) == 3

        assert wait_for(all_closed, timeout=20, step=0.1), closed
        assert sent >= 5  # it kept sending until the server closed it: a deadline, not an inactivity timer
        assert requests.get(server.url + "/livez", timeout=5).status_code == 200
        assert wait_for(lambda: server.open_connections == 0, timeout=15)
    finally:
        for s in (silent, trickling, kept_alive):
            s.close()
        server.stop()


def test_connections_beyond_the_limit_are_closed_and_the_server_recovers(two_pairs):
    server = start_server(create_app(two_pairs), settings=HttpSettings(max_connections=5, idle_timeout=30.0))
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(5)]
    try:
        assert wait_for(lambda: server.open_connections == 5, timeout=10)
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            assert wait_for(lambda: closed_by_server(extra), timeout=10)
        finally:
            extra.close()
        assert server.rejected_connections >= 1
        assert server.open_connections == 5
    finally:
        for s in held:
            s.close()
    try:
        assert wait_for(lambda: server.open_connections == 0, timeout=10)
        assert requests.get(server.url + "/livez", timeout=5).status_code == 200
    finally:
        server.stop()


def test_1000_slowloris_sockets_leave_the_server_answering_others_with_bounded_threads_and_memory(two_pairs):
    settings = HttpSettings()  # the defaults: 30 s idle timeout, 2048 connections, 8 threads
    server = start_server(create_app(two_pairs), settings=settings)
    threads_before, rss_before = threading.active_count(), rss_mib()
    sockets: list[socket.socket] = []
    answered: Counter = Counter()
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: test\r\n")
            sockets.append(s)
        assert wait_for(lambda: server.open_connections >= 1000, timeout=30)
        for round_ in range(5):  # keep trickling header lines while others ask
            for i, s in enumerate(sockets):
                s.sendall(f"X-Slow-{round_}: {i}\r\n".encode())
            with requests.Session() as session:
                for path in ENDPOINTS:
                    answered[session.get(server.url + path, timeout=10).status_code] += 1
        threads_during, rss_during = threading.active_count(), rss_mib()
        held = server.open_connections
        workers = worker_threads()
    finally:
        for s in sockets:
            s.close()
        server.stop()
    print(f"\nslowloris: {held} connections held open, {sum(answered.values())} other requests answered {dict(answered)}, "
          f"threads {threads_before} -> {threads_during} (workers {workers}), "
          f"RSS {rss_before:.0f} -> {rss_during:.0f} MiB (+{rss_during - rss_before:.1f}, client sockets included)")
    assert answered == Counter({200: 5 * len(ENDPOINTS)})
    assert held >= 1000
    assert workers <= settings.threads
    assert threads_during - threads_before <= settings.threads
    assert rss_during - rss_before < 200  # generous: a thread per socket (the old server) was far above


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n", 431),
        (b"GET /metrics HTTP/1.1\r\nHost: test\r\nContent-Length: 200000\r\n\r\n" + b"b" * 200_000, 400),
        (b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: nope\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"BREW /metrics HTTP/1.1\r\nHost: test\r\n\r\n", 405),
        (b"DELETE /api/status HTTP/1.1\r\nHost: test\r\n\r\n", 405),
        (b"POST /metrics HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc", 405),
        (b"GET /nothing/here HTTP/1.1\r\nHost: test\r\n\r\n", 404),
    ],
    ids=["garbage", "oversized-head", "huge-head", "oversized-body", "bad-length", "bad-encoding", "unknown-method",
         "delete", "post", "unknown-path"],
)
def test_garbage_oversized_and_unknown_requests_get_a_4xx_without_a_stack_trace(two_pairs, caplog, request_bytes,
                                                                                  expected):
    server = start_server(create_app(two_pairs))
    try:
        with caplog.at_level(logging.DEBUG):
            reply = raw_exchange(server.port, request_bytes)
            assert requests.get(server.url + "/livez", timeout=5).status_code == 200  # still serving
    finally:
        server.stop()
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.split()[1] == str(expected).encode(), reply[:300]
    assert 400 <= expected < 600
    assert b"Traceback" not in reply and b'File "' not in reply
    if expected == 405:
        assert b"\r\nallow: get, head\r\n" in b"\r\n" + rest.lower()
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
