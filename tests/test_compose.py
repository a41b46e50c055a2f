"""docker-compose.yml without a Docker engine: schema-valid, every path and dependency real, every config file one
that the other tests already check, every port on 127.0.0.1."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from exporter.cli import build_parser
from exporter.config import load_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def mounts(service):
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        yield source, target


def test_compose_file_validates_against_the_compose_specification():
    checker = shutil.which("check-jsonschema") or pytest.fail("check-jsonschema missing: pip install -e '.[test]'")
    result = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_the_four_services_with_healthchecks():
    assert set(SERVICES) == {"exporter", "prometheus", "alertmanager", "grafana"}
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"][0] == "CMD", name


def test_every_bind_mount_exists_and_named_volumes_are_declared():
    for service in SERVICES:
        for source, _ in mounts(service):
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{service}: {source}"
            else:
                assert source in COMPOSE.get("volumes", {}), f"{service}: {source}"


def test_every_dependency_is_a_service_with_a_healthcheck():
    for name, service in SERVICES.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} -> {dependency}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in SERVICES[dependency]


def test_every_port_is_published_on_loopback_only():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_mounted_configs_are_the_files_the_other_tests_check():
    assert ("./prometheus.yml", "/etc/prometheus/prometheus.yml") in mounts("prometheus")  # test_alert_rules
    assert ("./alerts", "/etc/prometheus/alerts") in mounts("prometheus")  # promtool unit tests
    assert ("./alerts/alertmanager.yml", "/etc/alertmanager/alertmanager.yml") in mounts("alertmanager")  # amtool
    assert ("./grafana/dashboards", "/var/lib/grafana/dashboards") in mounts("grafana")  # test_grafana
    assert ("./grafana/provisioning", "/etc/grafana/provisioning") in mounts("grafana")


def test_prometheus_targets_and_grafana_datasource_name_the_compose_services():
    prom = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert "exporter:9477" in targets
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert (ROOT / "alerts" / Path(prom["rule_files"][0]).name).exists()
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/kraken.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana" / "dashboards" / Path(home).name).exists()


def test_grafana_is_an_anonymous_read_only_viewer():
    env = SERVICES["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_the_exporter_service_runs_a_command_our_cli_accepts():
    args = build_parser().parse_args(SERVICES["exporter"]["command"])
    config = load_config(args.command, args, SERVICES["exporter"]["environment"])
    assert config.command == "demo" and config.host == "0.0.0.0" and config.canary_every == 0


def test_the_dockerfile_copies_files_that_exist_and_runs_the_console_script():
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["kraken-capacity-exporter"]' in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'kraken-capacity-exporter = "exporter.cli:main"' in pyproject
    assert SERVICES["exporter"]["build"] == "."


def test_compose_healthcheck_command_of_the_exporter_is_valid_python():
    code = SERVICES["exporter"]["healthcheck"]["test"][-1]
    compile(code, "healthcheck", "exec")
    assert SERVICES["exporter"]["healthcheck"]["test"][:3] == ["CMD", "python", "-c"]


@pytest.mark.integration
def test_the_exporter_healthchecks_probe_healthz_and_fail_while_a_pair_is_blind(exporter):
    import sys

    from exporter.core.reading import PairReading
    from exporter.web.app import create_app, start_server

    dockerfile = re.search(r'HEALTHCHECK .*?CMD \["python", "-c", "(.+?)"\]', (ROOT / "Dockerfile").read_text(), flags=re.S)
    probes = {"Dockerfile": dockerfile.group(1), "compose": SERVICES["exporter"]["healthcheck"]["test"][-1]}
    telemetry = exporter.add_pair("XDGUSD")
    server = start_server(create_app(exporter))

    def run(code: str) -> subprocess.CompletedProcess:
        probe = code.replace("http://127.0.0.1:9477", server.url)
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30)

    try:
        for name, code in probes.items():
            assert "'http://127.0.0.1:9477/healthz'" in code, name
            telemetry.set_internal_counts(active_orders=1, slot_count=1)
            assert run(code).returncode == 0, name
            exporter.remove_pair("XDGUSD")

            class Blind:
                pair = "XDGUSD"

                def reading(self):
                    return PairReading(pair="XDGUSD", health=None, blind=True, problem="no usable data")

            exporter.add_source(Blind())
            assert run(code).returncode != 0, name
            exporter.remove_pair("XDGUSD")
            exporter.add_source(telemetry)
    finally:
        server.stop()
