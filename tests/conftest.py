"""Shared fixtures: a manual clock, isolated registries, and real binaries that CI must have."""

from __future__ import annotations

import os
import shutil
import socket

import pytest
from prometheus_client import CollectorRegistry

from exporter import CapacityExporter, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_700_000_000.0)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def exporter(registry: CollectorRegistry, clock: ManualClock) -> CapacityExporter:
    return CapacityExporter(registry=registry, clock=clock)


def require_binary(name: str) -> str:
    """Path of a Debian-packaged binary; skip locally when absent, but fail in CI where .ci/run installs it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (apt-get install prometheus prometheus-alertmanager chromium victoria-metrics)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must run this test")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; never a blind sleep."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (EOF or reset); False while it is still open."""
    sock.setblocking(False)
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.fixture
def kraken_secret() -> str:
    import base64

    return base64.b64encode(bytes(range(64))).decode()


@pytest.fixture
def fake_kraken(kraken_secret):
    from exporter.demo.fake_kraken import FakeKraken, order_info

    orders = {
        "OAAAAA-AAAAA-AAAAA1": order_info("XDGUSD"),
        "OAAAAA-AAAAA-AAAAA2": order_info("XDGUSD", vol_exec="4.00000000"),
        "OAAAAA-AAAAA-AAAAA3": order_info("XDGUSD", status="pending"),
        "OBBBBB-BBBBB-BBBBB1": order_info("XBTUSD"),
        "OBBBBB-BBBBB-BBBBB2": order_info("XBTUSD"),
        "OCCCCC-CCCCC-CCCCC1": order_info("ETHUSD"),
    }
    fake = FakeKraken("test-key-0001", kraken_secret, open_orders=orders, slow_seconds=2.0)
    fake.start()
    yield fake
    fake.stop()
