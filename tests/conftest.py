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
        message = f"{name} not installed (apt-get install prometheus prometheus-alertmanager chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must run this test")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
