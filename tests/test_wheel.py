"""The package as users get it: a wheel built from this checkout, installed in a fresh virtual environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with only the wheel and its dependencies; returns its bin/ directory."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "exporter", source / "exporter", ignore=shutil.ignore_patterns("__pycache__"))
    dist = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(source)],
                   check=True, timeout=300)
    wheel = next(dist.glob("*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    str(wheel)], check=True, timeout=600)
    return venv / "bin"


def test_the_wheel_ships_every_subpackage_and_the_card(installed):
    wheel = next((installed.parent.parent / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("core", "sources", "web", "demo"):
        assert f"exporter/{package}/__init__.py" in names
    assert "exporter/web/card.html" in names
    assert "exporter/web/runbooks.md" in names  # served at /runbooks


def test_the_installed_command_prints_its_version(installed, tmp_path):
    done = subprocess.run([str(installed / "kraken-capacity-exporter"), "--version"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0
    import exporter

    assert done.stdout.strip() == f"kraken-capacity-exporter {exporter.__version__}"


def test_the_installed_demo_serves_api_status(installed, tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(installed / "kraken-capacity-exporter"), "demo", "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def answered() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/api/status", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        assert wait_for(answered, timeout=60, step=0.2)
        payload = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()
        assert payload["pair"] == "XDGUSD"
        assert payload["capacity_fill_health"]["open_order_limit_configured"] == 225
        card = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert card.status_code == 200 and b"Capacity" in card.content
        runbooks = requests.get(f"http://127.0.0.1:{port}/runbooks", timeout=5)
        assert runbooks.status_code == 200 and b'id="krakenbotstopband"' in runbooks.content
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
