"""The deployment files hang together: compose, the image, Prometheus and Grafana.

No infrastructure and no network: these only parse files (plus `docker-compose config`
when that tool is installed)."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "closeloop.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "closeloop-sla.json"

SERVICES = {
    "intake": "IntakeService",
    "routing": "RoutingService",
    "followup": "FollowupService",
    "notify": "NotifyService",
    "reporting": "ReportingService",
}

# Metric families the services export (closeloop_shared/metrics.py and the reporting
# service's open-cases collector); a histogram also yields _bucket, _sum and _count.
COUNTERS_AND_GAUGES = {
    "closeloop_sla_breaches_total",
    "closeloop_escalations_total",
    "closeloop_open_cases",
    "closeloop_feedback_received_total",
    "closeloop_notifications_total",
    "closeloop_dead_letters_total",
}
HISTOGRAMS = {"closeloop_time_to_first_response_seconds"}
EXPORTED_SERIES = COUNTERS_AND_GAUGES | {
    f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
METRIC_NAME = re.compile(r"\bcloseloop_[A-Za-z0-9_]+")


def load_yaml(path):
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose():
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def dashboard():
    with DASHBOARD.open(encoding="utf-8") as f:
        return json.load(f)


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # collapsed rows nest their panels


def dashboard_exprs(dashboard):
    return [target["expr"] for panel in all_panels(dashboard["panels"])
            for target in panel.get("targets", []) if target.get("expr")]


# --- docker-compose.yml -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_runs_each_service_with_nameko(compose, name):
    service = compose["services"][name]
    command = service["command"]
    assert isinstance(command, list), f"{name}: command must be an exec-form list"
    # deploy.serve runs the service as `nameko run` does, stopping once however often signalled
    assert command[:3] == ["python", "-m", "deploy.serve"], f"{name}: {command}"
    assert "--config" in command
    config = command[command.index("--config") + 1]
    assert (ROOT / config).is_file(), f"{name}: nameko config {config} is missing"
    module, _, cls = command[-1].partition(":")
    assert cls == SERVICES[name]
    source = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert source.is_file(), f"{name}: {source} is missing"
    assert f"class {cls}" in source.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_service_has_healthcheck_restart_and_image(compose, name):
    service = compose["services"][name]
    assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
    assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, name
    build = service["build"]
    assert (ROOT / build.get("context", ".") / build["dockerfile"]).resolve() == DOCKERFILE


def mounted_sources(compose):
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith(("./", "../", "/")):
                yield source


def test_every_file_mounted_from_deploy_exists(compose):
    sources = [s for s in mounted_sources(compose) if s.startswith("./deploy")]
    assert sources, "compose mounts nothing from ./deploy"
    for source in sources:
        assert (ROOT / source).exists(), f"compose mounts {source}, which does not exist"


# --- deploy/Dockerfile --------------------------------------------------------------------

def test_dockerfile_copies_files_that_exist():
    copies = [line.split()[1:-1] for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
              if line.startswith("COPY ") and "--from" not in line]
    sources = [s for sources in copies for s in sources]
    assert "requirements.txt" in sources and "constraints.txt" in sources
    ignored = {line.strip().rstrip("/") for line in
               (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert source.rstrip("/") not in ignored, f".dockerignore excludes {source}"


# --- Prometheus ---------------------------------------------------------------------------

def test_prometheus_scrapes_every_service():
    config = load_yaml(PROMETHEUS)
    jobs = config["scrape_configs"]
    names = [job["job_name"] for job in jobs]
    assert len(names) == len(set(names)), f"duplicate job names: {names}"
    targets = {}
    for job in jobs:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", []):
            # A "service" target label would clash with closeloop_dead_letters_total{service}.
            assert "service" not in static.get("labels", {}), job["job_name"]
            for target in static["targets"]:
                targets[target] = job["job_name"]
    for name in SERVICES:
        assert f"{name}:8000" in targets, f"prometheus does not scrape {name}:8000"
    assert "prometheus" in names
    # Only prometheus.yml is mounted into the container, so no rule files can be found.
    assert not config.get("rule_files"), "rule_files needs another compose mount"


# --- Grafana ------------------------------------------------------------------------------

def test_grafana_datasource_is_the_default_prometheus():
    datasources = load_yaml(DATASOURCE)["datasources"]
    (prometheus,) = [d for d in datasources if d["name"] == "Prometheus"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["uid"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"] is True


def test_grafana_dashboard_provider_reads_the_mounted_folder(compose):
    providers = load_yaml(DASHBOARD_PROVIDER)["providers"]
    paths = {p["options"]["path"] for p in providers if p["type"] == "file"}
    mounts = {v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]
              if v.startswith("./deploy/grafana/dashboards")}
    assert paths and paths <= mounts


def test_dashboard_is_valid_and_uses_the_prometheus_datasource(dashboard):
    assert dashboard["uid"] == "closeloop-sla"
    assert dashboard["title"] == "Closeloop SLA"
    assert isinstance(dashboard["schemaVersion"], int)
    panels = list(all_panels(dashboard["panels"]))
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat", "row"}, panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        for holder in [panel, *panel.get("targets", [])]:
            if "datasource" in holder:
                assert holder["datasource"]["uid"] == "prometheus", panel["title"]


def test_dashboard_only_queries_exported_metrics(dashboard):
    exprs = dashboard_exprs(dashboard)
    assert exprs
    referenced = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert referenced <= EXPORTED_SERIES, f"unknown metrics: {referenced - EXPORTED_SERIES}"
    families = {re.sub(r"_(bucket|sum|count)$", "", name) if name not in COUNTERS_AND_GAUGES
                else name for name in referenced}
    assert families == COUNTERS_AND_GAUGES | HISTOGRAMS, "every metric gets a panel"


def test_dashboard_bucket_bounds_match_prometheus_client(dashboard):
    # prometheus_client writes bucket bounds as floats (le="86400.0"), so le="86400"
    # would match no series at all.
    for expr in dashboard_exprs(dashboard):
        for bound in re.findall(r'\ble="([^"]*)"', expr):
            assert bound == "+Inf" or "." in bound, f'le="{bound}" in {expr}'


def test_dashboard_metric_names_are_still_exported_by_the_code():
    source = "\n".join(p.read_text(encoding="utf-8")
                       for folder in ("closeloop_shared", "services")
                       for p in (ROOT / folder).rglob("*.py"))
    for name in COUNTERS_AND_GAUGES | HISTOGRAMS:
        declared = name[:-len("_total")] if name.endswith("_total") else name
        assert re.search(rf'"{declared}(_total)?"', source), f"{name} is not declared"


# --- the real tool ------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose is not installed; compose syntax not checked by the tool")
def test_docker_compose_config_is_valid():
    result = subprocess.run(["docker-compose", "config", "-q"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or result.stdout
