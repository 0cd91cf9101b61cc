"""The deployment files hang together: compose, the image, Prometheus and Grafana.

No infrastructure and no network: these only parse files and run
`python -m deploy.secrets init` into a temporary directory (plus `docker-compose config`
when that tool is installed)."""
import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from kombu import Connection
from pymongo.uri_parser import parse_uri

from closeloop_shared import bus
from closeloop_shared.bus import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    INBOUND_EXCHANGE,
    INBOUND_QUEUE,
    MAX_ATTEMPTS,
    delay_queue,
    retry_pause,
)
from closeloop_shared.config import BUS_QUEUE_TYPE
from closeloop_shared.tokens import Signer
from deploy import broker_users
from deploy import replicas as deploy_replicas
from deploy import secrets as deploy_secrets

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "closeloop.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "closeloop-sla.json"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
ENV_EXAMPLE = ROOT / ".env.example"
REPLICAS_OVERRIDE = DEPLOY / "compose.replicas.yml"

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
    "closeloop_cases_breached_open",
    "closeloop_cases_at_risk",
    "closeloop_clock_outcomes_7d",
    "closeloop_feedback_received_total",
    "closeloop_notifications_total",
    "closeloop_dead_letters_total",
    "closeloop_notify_provider_requests_total",
    "closeloop_notify_webhooks_disabled_total",
    "closeloop_revisit_outcomes_7d",
    # every service: closeloop_shared.red (RED per entrypoint, timers' heartbeats) and outbox.py
    "closeloop_entrypoint_calls_total",
    "closeloop_entrypoint_errors_total",
    "closeloop_timer_last_success_timestamp_seconds",
    "closeloop_due_timer_last_read_timestamp_seconds",
    "closeloop_outbox_backlog_messages",
    "closeloop_outbox_oldest_age_seconds",
}
HISTOGRAMS = {"closeloop_time_to_first_response_seconds", "closeloop_notification_latency_seconds",
              "closeloop_breach_detection_lag_seconds", "closeloop_time_to_resolution_seconds",
              "closeloop_entrypoint_duration_seconds"}
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


def test_the_image_has_every_module_compose_runs(compose):
    copied = {source for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
              if line.startswith("COPY ") and "--from" not in line for source in line.split()[1:-1]}
    for name, spec in compose["services"].items():
        if not str(spec.get("image", "")).startswith("closeloop:"):
            continue
        argv = [*(spec.get("entrypoint") or []), *(spec.get("command") or [])]
        if argv[:2] == ["python", "-m"]:
            source = argv[2].replace(".", "/") + ".py"
            assert source in copied or any(source.startswith(c) for c in copied if c.endswith("/")), \
                f"{name} runs {argv[2]}, which the image does not copy"


def test_the_image_has_the_ops_commands_the_readme_names():
    copied = {source for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
              if line.startswith("COPY ") for source in line.split()[1:-1]}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in ("deploy.identity", "deploy.dead_letters"):
        assert f"python -m {command}" in readme
        assert command.replace(".", "/") + ".py" in copied, f"the image lacks {command}"


# --- Prometheus ---------------------------------------------------------------------------

def test_prometheus_discovers_every_replica_of_every_service():
    config = load_yaml(PROMETHEUS)
    jobs = config["scrape_configs"]
    names = [job["job_name"] for job in jobs]
    assert len(names) == len(set(names)), f"duplicate job names: {names}"
    discovered = {}
    for job in jobs:
        if job["job_name"] != "rabbitmq":  # RabbitMQ's own endpoint: its queue family
            assert job.get("metrics_path", "/metrics") == "/metrics"
        assert "service" not in str(job.get("relabel_configs", "")), job["job_name"]
        for static in job.get("static_configs", []):
            # A "service" target label would clash with closeloop_dead_letters_total{service}.
            assert "service" not in static.get("labels", {}), job["job_name"]
        for dns in job.get("dns_sd_configs", []):
            # Docker's DNS answers a service name with every replica (--scale routing=3)
            assert dns["type"] == "A" and dns["port"] == 8000, job["job_name"]
            discovered.update({name: job["job_name"] for name in dns["names"]})
    assert discovered == {name: name for name in SERVICES}
    assert "prometheus" in names


def test_prometheus_loads_the_alert_rules_compose_mounts(compose):
    config = load_yaml(PROMETHEUS)
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in compose["services"]["prometheus"]["volumes"]


def alert_rules():
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_alert_rules_are_well_formed_and_cover_what_operations_watch():
    groups = load_yaml(ALERTS)["groups"]
    assert len({group["name"] for group in groups}) == len(groups)
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["alert"] and rule["expr"].strip() and rule["annotations"]["summary"]
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
    assert {rule["alert"] for rule in alert_rules()} >= {
        "BreachSpike", "CasesAtRiskGrowing", "ServiceDown", "ServiceAbsent", "DeadLetters", "DeadLettersWaiting",
        "NotificationsAbandoned", "DeadlineScanStalled", "OutboxBacklogStuck", "HandlerErrors"}


RABBITMQ_SERIES = {"rabbitmq_detailed_queue_messages_ready"}  # the queue_coarse_metrics family prometheus.yml asks for


def test_alert_rules_only_name_exported_metrics():
    for rule in alert_rules():
        referenced = set(METRIC_NAME.findall(rule["expr"]))
        assert referenced <= EXPORTED_SERIES, f"{rule['alert']}: unknown metrics {referenced - EXPORTED_SERIES}"
        assert set(re.findall(r"\brabbitmq_\w+", rule["expr"])) <= RABBITMQ_SERIES, rule["alert"]
        labels = set(re.findall(r"\b(\w+)=~?\"", rule["expr"]))
        assert labels <= {"job", "outcome", "clock", "severity", "le", "queue", "service", "entrypoint", "kind",
                          "collection"}, rule["alert"]


def test_prometheus_scrapes_rabbitmqs_queue_metrics():
    job = {job["job_name"]: job for job in load_yaml(PROMETHEUS)["scrape_configs"]}["rabbitmq"]
    assert job["metrics_path"] == "/metrics/detailed" and job["params"]["family"] == ["queue_coarse_metrics"]
    assert job["static_configs"][0]["targets"] == ["rabbitmq:15692"]


def test_the_platform_dashboard_queries_exported_and_rabbitmq_metrics():
    with (DEPLOY / "grafana" / "dashboards" / "closeloop-platform.json").open(encoding="utf-8") as f:
        platform = json.load(f)
    exprs = dashboard_exprs(platform)
    assert len(exprs) >= 6 and platform["uid"] != "closeloop-sla"
    for expr in exprs:
        assert set(METRIC_NAME.findall(expr)) <= EXPORTED_SERIES, expr
        assert set(re.findall(r"\brabbitmq_\w+", expr)) <= RABBITMQ_SERIES, expr
    ids = [panel["id"] for panel in all_panels(platform["panels"])]
    assert len(ids) == len(set(ids))


def test_routing_scales_without_a_host_port_clash(compose):
    published = {name: set(published_ports(spec)) for name, spec in compose["services"].items()}
    assert len(published["routing"]) >= 3, "routing=3 needs three host ports"
    for name, ports in published.items():
        for other, taken in published.items():
            assert name == other or not ports & taken, f"{name} and {other} share a host port"


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


def all_dashboards():
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS.glob("*.json"))}


def test_every_dashboard_is_valid_and_uses_the_prometheus_datasource():
    dashboards = all_dashboards()
    assert set(dashboards) >= {"closeloop-sla.json", "closeloop-platform.json", "closeloop-followup.json"}
    uids = [d["uid"] for d in dashboards.values()]
    assert len(uids) == len(set(uids)), "dashboard uids must be unique"
    for name, dashboard in dashboards.items():
        assert dashboard["title"].startswith("Closeloop") and isinstance(dashboard["schemaVersion"], int), name
        panels = list(all_panels(dashboard["panels"]))
        ids = [p["id"] for p in panels]
        assert panels and len(ids) == len(set(ids)), f"{name}: panel ids must be unique"
        for panel in panels:
            assert panel["type"] in {"timeseries", "stat", "row"}, panel["title"]
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            assert panel["type"] == "row" or panel.get("targets"), f"{name}: {panel['title']} queries nothing"
            for holder in [panel, *panel.get("targets", [])]:
                if "datasource" in holder:
                    assert holder["datasource"]["uid"] == "prometheus", panel["title"]


def test_the_platform_dashboard_shows_red_queues_dead_letters_outbox_and_the_scan_heartbeat():
    exprs = "\n".join(dashboard_exprs(all_dashboards()["closeloop-platform.json"]))
    for needed in ('closeloop_entrypoint_calls_total{kind="event"}', "closeloop_entrypoint_duration_seconds_bucket",
                   "closeloop_entrypoint_errors_total", "rabbitmq_detailed_queue_messages_ready",
                   'queue="closeloop.dead_letter"', "closeloop_outbox_backlog_messages",
                   'entrypoint="check_deadlines"', "closeloop_due_timer_last_read_timestamp_seconds"):
        assert needed in exprs, needed


def test_the_followup_dashboard_shows_revisit_completion_satisfaction_reminders_and_unreachable():
    exprs = "\n".join(dashboard_exprs(all_dashboards()["closeloop-followup.json"]))
    for needed in ('source="programme", outcome=~"completed|unreachable"', 'outcome=~"satisfied|unsatisfied"',
                   'source="case"', 'kind=~"revisit_due|appointment_reminder", outcome="sent"',
                   'outcome=~"failed|abandoned"'):
        assert needed in exprs, needed


def test_dashboard_only_queries_exported_metrics(dashboard):
    exprs = [expr for found in all_dashboards().values() for expr in dashboard_exprs(found)]  # every dashboard
    assert exprs
    referenced = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert referenced <= EXPORTED_SERIES, f"unknown metrics: {referenced - EXPORTED_SERIES}"
    families = {re.sub(r"_(bucket|sum|count)$", "", name) if name not in COUNTERS_AND_GAUGES
                else name for name in referenced}
    assert families == COUNTERS_AND_GAUGES | HISTOGRAMS, "every metric gets a panel on one of the dashboards"


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


# --- compose: nothing published that should not be, every secret from .env ----------------

# ${NAME}, ${NAME:?message}, ${NAME:-default}, ${NAME-default}, ...
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
OPTIONAL = {"SMTP_USER", "SMTP_PASSWORD"}  # a relay may need no authentication
OPTIONAL |= {"BACKUP_INTERVAL_SECONDS", "BACKUP_RETENTION_DAYS"}  # the backup loop has defaults
# notify's other channels and policy: empty leaves a channel off or the default in force
OPTIONAL |= {"NOTIFY_SMS_ENDPOINT", "NOTIFY_SMS_ACCESS_KEY_ID", "NOTIFY_SMS_ACCESS_KEY_SECRET",
             "NOTIFY_SMS_SIGN_NAME", "NOTIFY_SMS_TEMPLATES", "NOTIFY_WECHAT_APP_ID", "NOTIFY_WECHAT_APP_SECRET",
             "NOTIFY_WECHAT_MODE", "NOTIFY_WECHAT_TEMPLATES", "NOTIFY_WECOM_ROBOTS", "NOTIFY_WEBHOOKS",
             "NOTIFY_CUSTOMER_CHANNELS", "NOTIFY_STAFF_CHANNELS", "NOTIFY_QUIET_HOURS", "NOTIFY_BRAND_POLICIES",
             "NOTIFY_SMS_RECEIPT_TOKEN", "NOTIFY_WECHAT_SERVER_TOKEN"}
OPTIONAL |= {"BUS_QUEUE_TYPE"}  # empty: classic work queues
SECRETS_MOUNT = "/run/secrets"


def compose_text():
    """docker-compose.yml without its comment lines (which may show ${...} syntax)."""
    return "\n".join(line for line in COMPOSE.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("#"))


def compose_variables():
    return {m.group(1): m.group(2) for m in VARIABLE.finditer(compose_text())}


def example_env():
    return deploy_secrets.read_env(ENV_EXAMPLE)


def interpolate(text, env):
    """What compose makes of ${...} with the given environment."""
    def value(match):
        name, operator = match.group(1), match.group(2)
        if operator == ":?" and not env.get(name):
            raise KeyError(f"{name} is required")
        return env.get(name, "")
    return VARIABLE.sub(value, text)


@pytest.fixture(scope="module")
def distinct_env():
    """Every variable set to a value naming it: shows which variable went where."""
    return {name: f"value-of-{name}" for name in example_env()}


@pytest.fixture(scope="module")
def resolved(distinct_env):
    return yaml.safe_load(interpolate(compose_text(), distinct_env))


def default_profile(compose):
    return {name: spec for name, spec in compose["services"].items() if not spec.get("profiles")}


def published_ports(spec):
    """Host ports a service publishes: "8001:8000", "127.0.0.1:8025:8025", a range
    "8010-8019:8000" (one per replica), long syntax."""
    ports = []
    for port in spec.get("ports", []):
        if isinstance(port, dict):  # docker-compose config's output: published "8101-8102" is a range
            first, _, last = str(port["published"]).partition("-")
            ports.extend(range(int(first), int(last or first) + 1))
        else:
            parts = str(port).split(":")
            first, _, last = (parts[-2] if len(parts) > 1 else parts[0]).partition("-")
            ports.extend(range(int(first), int(last or first) + 1))
    return ports


def test_default_profile_publishes_only_the_services_and_grafana(compose):
    published = {port: name for name, spec in default_profile(compose).items()
                 for port in published_ports(spec)}
    routing_replicas = {port: "routing" for port in range(8010, 8020)}
    singles = {8001 + i: name for i, name in enumerate(SERVICES) if name != "routing"}
    assert published == {**singles, **routing_replicas, 8006: "console", 3000: "grafana"}
    for name in ("mongo", "rabbitmq", "prometheus"):
        assert not compose["services"][name].get("ports"), f"{name} publishes a port"
    for name, spec in compose["services"].items():
        assert spec.get("network_mode") != "host", name


def test_mailpit_runs_only_in_the_dev_profile(compose, resolved):
    mailpit = compose["services"]["mailpit"]
    assert mailpit["profiles"] == ["dev"]
    assert all(str(port).startswith("127.0.0.1:") for port in mailpit.get("ports", []))
    assert "mailpit" not in default_profile(compose)
    notify = resolved["services"]["notify"]["environment"]
    for key in ("SMTP_HOST", "SMTP_PORT", "SMTP_SENDER", "SMTP_USER", "SMTP_PASSWORD", "SMTP_STARTTLS"):
        assert notify[key] == f"value-of-{key}", f"notify's {key} does not come from .env"
    for name in set(SERVICES) - {"notify"}:  # the relay's password goes only where mail is sent
        assert "SMTP_PASSWORD" not in resolved["services"][name]["environment"], name


def test_grafana_requires_its_password_and_has_no_anonymous_access(compose):
    environment = compose["services"]["grafana"]["environment"]
    assert str(environment["GF_AUTH_ANONYMOUS_ENABLED"]).lower() == "false"
    match = VARIABLE.fullmatch(environment["GF_SECURITY_ADMIN_PASSWORD"])
    assert match and match.group(1) == "GRAFANA_ADMIN_PASSWORD" and match.group(2) == ":?"


def test_no_secret_has_a_default():
    text = compose_text()
    for name, operator in compose_variables().items():
        if name in OPTIONAL:
            assert operator is None, f"${{{name}}} must be plain (empty when unset)"
        else:
            assert operator == ":?", f"${{{name}}} must be required (${{{name}:?...}}), not defaulted"
    assert "guest" not in text, "no guest account in compose"
    assert deploy_secrets.PLACEHOLDER not in text
    assert "RABBITMQ_DEFAULT_PASS" not in text


def test_env_example_has_every_variable_and_init_fills_every_password():
    example = example_env()
    assert set(compose_variables()) <= set(example), "compose reads variables .env.example lacks"
    generated = set(deploy_secrets.generated_variables())
    assert generated <= set(example)
    for name in generated:
        assert example[name] == deploy_secrets.PLACEHOLDER, f"{name}: placeholder expected"
    for name, value in example.items():  # every other password is the operator's (SMTP)
        if "PASSWORD" in name and name not in generated:
            assert name in OPTIONAL and value == "", name
    # integrations' passwords are handed out, not used by compose; everything else is
    assert set(example) - set(compose_variables()) == {
        user.password_variable for user in broker_users.users()
        if user.name in broker_users.INTEGRATIONS}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_connects_as_its_own_user(resolved, distinct_env, name):
    environment = resolved["services"][name]["environment"]
    amqp = Connection(environment["AMQP_URI"])
    assert (amqp.hostname, amqp.port, amqp.virtual_host) == ("rabbitmq", 5672, broker_users.VHOST)
    assert amqp.userid == name
    assert amqp.password == distinct_env[broker_users.service_user(name).password_variable]
    mongo = parse_uri(environment["MONGO_URI"])
    assert mongo["nodelist"] == [("mongo", 27017)]
    assert mongo["username"] == name
    assert mongo["password"] == distinct_env[deploy_secrets.mongo_password_variable(name)]
    assert mongo["options"]["authSource"] == deploy_secrets.mongo_database(name)
    assert mongo["options"]["replicaSet"] == "rs0"


def service_mounts(spec):
    return {volume.split(":")[1]: volume for volume in spec.get("volumes", [])}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_only_routing_gets_the_signing_key(compose, name):
    spec = compose["services"][name]
    environment, mounts = spec["environment"], service_mounts(spec)
    public = f"{SECRETS_MOUNT}/{deploy_secrets.PUBLIC_KEYS}"
    signing = f"{SECRETS_MOUNT}/{deploy_secrets.SIGNING_KEY}"
    assert environment["AUTH_PUBLIC_KEYS_FILE"] == public
    assert mounts[public] == f"./secrets/{deploy_secrets.PUBLIC_KEYS}:{public}:ro"
    if name == "routing":
        assert environment["AUTH_SIGNING_KEY_FILE"] == signing
        assert mounts[signing] == f"./secrets/{deploy_secrets.SIGNING_KEY}:{signing}:ro"
    else:
        assert "AUTH_SIGNING_KEY_FILE" not in environment
        assert signing not in mounts
    assert not any(v.split(":")[0].rstrip("/") == "./secrets" for v in spec.get("volumes", [])), \
        "mount single files, not the whole secrets directory"


def test_secret_files_are_mounted_read_only_where_needed(compose):
    written = {deploy_secrets.DEFINITIONS, deploy_secrets.MONGO_KEYFILE,
               deploy_secrets.SIGNING_KEY, deploy_secrets.PUBLIC_KEYS}
    users = {}
    for name, spec in compose["services"].items():
        for volume in spec.get("volumes", []):
            if volume.startswith("./secrets"):
                source, _, mode = volume.split(":")
                assert mode == "ro", volume
                assert Path(source).name in written, f"{source}: not written by deploy.secrets"
                users.setdefault(Path(source).name, set()).add(name)
    assert users[deploy_secrets.SIGNING_KEY] == {"routing"}
    assert users[deploy_secrets.MONGO_KEYFILE] == {"mongo"}
    assert users[deploy_secrets.DEFINITIONS] == {"rabbitmq"}  # the backup exports them from the broker
    assert users[deploy_secrets.PUBLIC_KEYS] == set(SERVICES)


def test_mongo_runs_with_authentication_and_a_keyfile(compose):
    mongo = compose["services"]["mongo"]
    command = " ".join(mongo["command"])
    assert "--replSet rs0" in command and "--keyFile /tmp/mongo-keyfile" in command
    assert "install -m 400 -o 999 -g 999 /run/secrets/mongo-keyfile /tmp/mongo-keyfile" in command
    assert "exec docker-entrypoint.sh mongod" in command
    environment = mongo["environment"]
    expected = {"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD",
                *map(deploy_secrets.mongo_password_variable, SERVICES)}
    assert set(environment) == expected
    for key, value in environment.items():
        assert VARIABLE.fullmatch(value).group(1) == key
    mounts = service_mounts(mongo)
    init = [v for target, v in mounts.items() if target.startswith("/docker-entrypoint-initdb.d/")]
    assert init == ["./deploy/mongo/init-users.js:/docker-entrypoint-initdb.d/10-init-users.js:ro"]
    health = " ".join(mongo["healthcheck"]["test"])
    assert "auth(process.env.MONGO_INITDB_ROOT_USERNAME, process.env.MONGO_INITDB_ROOT_PASSWORD)" in health
    assert "rs.initiate" in health and "isWritablePrimary" in health


def test_mongo_init_script_gives_each_service_its_own_database_only():
    script = (DEPLOY / "mongo" / "init-users.js").read_text(encoding="utf-8")
    listed = re.search(r"const services = \[([^\]]*)\]", script).group(1)
    assert re.findall(r'"(\w+)"', listed) == list(SERVICES)
    assert "`closeloop_${service}`" in script and deploy_secrets.mongo_database("x") == "closeloop_x"
    assert "`MONGO_${service.toUpperCase()}_PASSWORD`" in script
    assert deploy_secrets.mongo_password_variable("intake") == "MONGO_INTAKE_PASSWORD"
    assert re.findall(r'role: "(\w+)"', script) == ["readWrite"]
    assert "pwd: process.env[passwordVariable(service)]" in script


def test_rabbitmq_loads_its_users_from_the_definitions(compose):
    rabbitmq = compose["services"]["rabbitmq"]
    assert rabbitmq["hostname"] == "rabbitmq"
    assert not rabbitmq.get("environment"), "users come from the definitions file only"
    mounts = {v.split(":")[0]: v.split(":")[1] for v in rabbitmq["volumes"]}
    conf_target = mounts["./deploy/rabbitmq/rabbitmq.conf"]
    # after the image's conf.d/10-defaults.conf, which lets guest in from anywhere
    assert conf_target.startswith("/etc/rabbitmq/conf.d/") and Path(conf_target).name > "10-defaults.conf"
    settings = dict(line.split(" = ", 1) for line in
                    (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8").splitlines()
                    if line.strip() and not line.startswith("#"))
    assert settings["load_definitions"] == mounts[f"./secrets/{deploy_secrets.DEFINITIONS}"]
    assert settings["loopback_users.guest"] == "true"


def test_secrets_stay_out_of_git_and_the_image():
    for ignore in (".gitignore", ".dockerignore"):
        lines = {line.strip().rstrip("/") for line in
                 (ROOT / ignore).read_text(encoding="utf-8").splitlines()}
        assert {".env", "secrets"} <= lines, ignore


# --- deploy/broker_users.py (proven on a broker by tests/integration/test_bus_permissions.py)

def matches(regex, name):
    return re.fullmatch(regex, name) is not None


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_service_may_publish_only_its_own_events(name):
    user = broker_users.service_user(name)
    event_exchanges = {broker_users.event_exchange(s) for s in SERVICES}
    exchanges = event_exchanges | set(broker_users.bus_exchanges()) | {"amq.default", "amq.topic"}
    writable = {exchange for exchange in exchanges if matches(user.write, exchange)}
    assert writable == {broker_users.event_exchange(name), DEAD_LETTER_EXCHANGE.name}
    for queue in broker_users.retry_queues():  # republishing a failed message
        assert matches(user.write, queue.exchange.name)
    for queue in broker_users.startup_queues():  # binding needs write on the queue
        assert matches(user.write, queue.name) and matches(user.configure, queue.name)
        assert matches(user.read, queue.exchange.name)  # ... and read on the exchange
    consumed = set(broker_users.consumed_queues(name))
    assert consumed and all(matches(user.read, queue) for queue in consumed)
    others = {q.name for q in broker_users.startup_queues()} - consumed - {DEAD_LETTER_QUEUE.name}
    assert not any(matches(user.read, queue) for queue in others)
    assert (INBOUND_QUEUE.name in consumed) == (name == "intake")


def test_an_integration_may_only_write_the_inbound_exchange():
    (pos,) = [user for user in broker_users.users() if user.name == "pos"]
    names = [*broker_users.bus_exchanges(), *(q.name for q in broker_users.startup_queues()),
             *(q.name for q in broker_users.retry_queues()), "amq.default"]
    assert [n for n in names if matches(pos.write, n)] == [INBOUND_EXCHANGE.name]
    assert not any(matches(pos.configure, n) or matches(pos.read, n) for n in names)
    assert not pos.tags


def test_every_delay_queue_the_bus_uses_is_in_the_definitions():
    names = {q["name"] for q in broker_users.topology()["queues"]}
    for attempt in range(1, MAX_ATTEMPTS):
        delay = delay_queue(retry_pause(attempt))
        assert delay.name in names and matches(broker_users.RETRY_PATTERN, delay.name)


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_the_definitions_type_the_work_queues_as_the_services_declare_them(queue_type):
    """The broker declares the queues at boot from the definitions; a service declaring
    one with another x-queue-type would be refused (PRECONDITION_FAILED)."""
    defined = {q["name"]: q["arguments"] for q in broker_users.topology(queue_type=queue_type)["queues"]}
    declared = bus.startup_queues({BUS_QUEUE_TYPE: queue_type})
    assert all(defined[queue.name] == dict(queue.queue_arguments or {}) for queue in declared)
    work = {queue.name for queue in bus.inbound_queues({})} | {queue.name for queue in bus.subscriber_queues({})}
    quorum = {name for name, arguments in defined.items() if arguments.get("x-queue-type") == "quorum"}
    assert quorum == (work if queue_type == "quorum" else set())
    assert DEAD_LETTER_QUEUE.name not in quorum


# --- python -m deploy.secrets init --------------------------------------------------------

def recomputed_hash_matches(password, password_hash):
    raw = base64.b64decode(password_hash)
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode("utf-8")).digest() == digest


@pytest.fixture
def initialised(tmp_path, capsys):
    env, secrets_dir = tmp_path / ".env", tmp_path / "secrets"
    assert deploy_secrets.main(["init", "--dir", str(secrets_dir), "--env", str(env)]) == 0
    return env, secrets_dir, capsys.readouterr().out


def test_secrets_init_writes_env_and_secret_files_that_parse(initialised):
    env, secrets_dir, output = initialised
    values = deploy_secrets.read_env(env)
    assert set(values) == set(example_env())
    generated = [values[name] for name in deploy_secrets.generated_variables()]
    assert all(len(value) >= 24 and value != deploy_secrets.PLACEHOLDER for value in generated)
    assert len(set(generated)) == len(generated)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    keyfile = (secrets_dir / deploy_secrets.MONGO_KEYFILE).read_text().strip()
    assert len(keyfile) <= 1024 and len(base64.b64decode(keyfile, validate=True)) == 756
    assert stat.S_IMODE((secrets_dir / deploy_secrets.MONGO_KEYFILE).stat().st_mode) == 0o600
    jwks = json.loads((secrets_dir / deploy_secrets.PUBLIC_KEYS).read_text())
    signer = Signer.from_file(secrets_dir / deploy_secrets.SIGNING_KEY)
    assert [key["kid"] for key in jwks["keys"]] == [signer.kid]
    for name in (env.name, deploy_secrets.DEFINITIONS, deploy_secrets.MONGO_KEYFILE,
                 deploy_secrets.SIGNING_KEY):
        assert name in output  # says what it wrote


def test_secrets_init_definitions_match_broker_users_and_the_hashes_verify(initialised):
    env, secrets_dir, _ = initialised
    values = deploy_secrets.read_env(env)
    definitions = json.loads((secrets_dir / deploy_secrets.DEFINITIONS).read_text())
    expected = {user.name: user for user in broker_users.users()}
    assert [u["name"] for u in definitions["users"]] == list(expected)
    assert definitions["vhosts"] == [{"name": "/"}]
    for entry in definitions["users"]:
        user = expected[entry["name"]]
        assert entry["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert recomputed_hash_matches(values[user.password_variable], entry["password_hash"])
        assert not recomputed_hash_matches(values[user.password_variable] + "x", entry["password_hash"])
        assert entry["tags"] == list(user.tags)
    assert {p["user"]: (p["configure"], p["write"], p["read"]) for p in definitions["permissions"]} == {
        name: (u.configure, u.write, u.read) for name, u in expected.items()}
    assert all(p["vhost"] == "/" for p in definitions["permissions"])
    assert {t["user"] for t in definitions["topic_permissions"]} == set(broker_users.INTEGRATIONS)
    assert {q["name"] for q in definitions["queues"]} >= {q.name for q in broker_users.startup_queues()}


def test_secrets_init_keeps_an_existing_env_unless_forced(initialised, capsys):
    env, secrets_dir, _ = initialised
    before = env.read_text()
    keyfile = (secrets_dir / deploy_secrets.MONGO_KEYFILE).read_text()
    assert deploy_secrets.main(["init", "--dir", str(secrets_dir), "--env", str(env)]) == 0
    assert env.read_text() == before
    assert (secrets_dir / deploy_secrets.MONGO_KEYFILE).read_text() == keyfile
    definitions = json.loads((secrets_dir / deploy_secrets.DEFINITIONS).read_text())
    values = deploy_secrets.read_env(env)
    assert all(recomputed_hash_matches(values[f"RABBITMQ_{u['name'].upper()}_PASSWORD"], u["password_hash"])
               for u in definitions["users"])
    assert deploy_secrets.main(["init", "--dir", str(secrets_dir), "--env", str(env), "--force"]) == 0
    assert env.read_text() != before
    assert (secrets_dir / deploy_secrets.MONGO_KEYFILE).read_text() != keyfile


def test_secrets_init_writes_the_work_queues_of_the_envs_queue_type(initialised):
    env, secrets_dir, _ = initialised
    assert deploy_secrets.read_env(env)[BUS_QUEUE_TYPE] == "classic"
    env.write_text(env.read_text().replace(f"{BUS_QUEUE_TYPE}=classic", f"{BUS_QUEUE_TYPE}=quorum"))
    assert deploy_secrets.main(["init", "--dir", str(secrets_dir), "--env", str(env)]) == 0
    definitions = json.loads((secrets_dir / deploy_secrets.DEFINITIONS).read_text())
    arguments = {q["name"]: q["arguments"] for q in definitions["queues"]}
    assert arguments[INBOUND_QUEUE.name] == {"x-queue-type": "quorum"}
    assert arguments[DEAD_LETTER_QUEUE.name] == {}


def test_secrets_init_refuses_an_env_with_placeholders(tmp_path, capsys):
    env = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, env)
    assert deploy_secrets.main(["init", "--dir", str(tmp_path / "secrets"), "--env", str(env)]) == 2
    assert "placeholder" in capsys.readouterr().err
    assert not (tmp_path / "secrets").exists()


# --- the real tool ------------------------------------------------------------------------

needs_docker_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed; compose syntax not checked by the tool")


def docker_compose_config(env_file, *options, quiet=True):
    # a clean environment: variables from the caller's shell would override the env file
    return subprocess.run(["docker-compose", "--env-file", str(env_file), *options, "config",
                           *(["-q"] if quiet else [])],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})


@needs_docker_compose
@pytest.mark.parametrize("profile", [(), ("--profile", "dev"), ("--profile", "ops")])
def test_docker_compose_config_is_valid(tmp_path, profile):
    env_file = tmp_path / "example.env"
    shutil.copy(ENV_EXAMPLE, env_file)
    result = docker_compose_config(env_file, *profile)
    assert result.returncode == 0, result.stderr or result.stdout


# --- deploy/compose.replicas.yml (python -m deploy.replicas) -------------------------------

def test_the_replicas_override_is_what_deploy_replicas_writes(compose):
    assert REPLICAS_OVERRIDE.read_text(encoding="utf-8") == deploy_replicas.render(compose), \
        "deploy/compose.replicas.yml is stale: run python -m deploy.replicas"
    assert set(deploy_replicas.SCALED) == {*SERVICES, "console"}


def replica_count(spec):
    return int(spec.get("deploy", {}).get("replicas") or spec.get("scale") or 1)


def without_placement(spec):
    """A service's definition less what differs between the replicas' compose services."""
    spec = {key: value for key, value in spec.items() if key not in {"ports", "networks"}}
    spec["deploy"] = {key: value for key, value in spec.get("deploy", {}).items() if key != "replicas"}
    return spec


@needs_docker_compose
def test_the_replicas_override_runs_three_of_every_service_on_distinct_host_ports(tmp_path):
    env_file = tmp_path / "example.env"
    shutil.copy(ENV_EXAMPLE, env_file)
    result = docker_compose_config(env_file, "-f", str(COMPOSE), "-f", str(REPLICAS_OVERRIDE),
                                   "--profile", "dev", "--profile", "ops", quiet=False)
    assert result.returncode == 0, result.stderr or result.stdout
    merged = yaml.safe_load(result.stdout)["services"]
    for name in deploy_replicas.SCALED:
        extra = merged.get(name + deploy_replicas.REPLICA_SUFFIX)
        assert replica_count(merged[name]) + (replica_count(extra) if extra else 0) == 3, name
        if extra:  # the same service under another compose name: same queues, same DNS name
            assert without_placement(extra) == without_placement(merged[name]), name
            assert name in extra["networks"]["default"]["aliases"], name
    published = {}
    for name, spec in merged.items():
        ports = published_ports(spec)
        if ports:  # a published service needs a host port per replica
            assert len(ports) >= replica_count(spec), f"{name}: {len(ports)} host ports for {replica_count(spec)} replicas"
        published[name] = set(ports)
    for name, ports in published.items():
        for other, taken in published.items():
            assert name == other or not ports & taken, f"{name} and {other} share host ports {ports & taken}"


@needs_docker_compose
def test_docker_compose_accepts_what_secrets_init_writes(initialised):
    env, _, _ = initialised
    result = docker_compose_config(env)
    assert result.returncode == 0, result.stderr or result.stdout


@needs_docker_compose
def test_docker_compose_refuses_to_run_without_a_secret(tmp_path):
    env_file = tmp_path / "partial.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in example_env().items()
                                if k != "RABBITMQ_ROUTING_PASSWORD"))
    result = docker_compose_config(env_file)
    assert result.returncode != 0 and "RABBITMQ_ROUTING_PASSWORD" in result.stderr


def test_every_container_rotates_its_logs_and_has_a_resource_limit(compose):
    for name, spec in compose["services"].items():
        if spec.get("profiles"):
            continue
        assert spec["logging"]["driver"] == "json-file" and spec["logging"]["options"]["max-file"], name
        limits = spec["deploy"]["resources"]["limits"]
        assert limits["cpus"] and limits["memory"], name


def test_images_are_pinned_and_the_application_image_versioned(compose):
    for name, spec in compose["services"].items():
        image = spec.get("image", "")
        assert image and not image.endswith(":latest"), name
        if image.startswith("closeloop:"):
            assert "${CLOSELOOP_VERSION:?" in image, name
        else:  # a patch release (x.y.z), not a moving minor tag
            assert re.search(r":v?\d+\.\d+\.\d+", image), f"{name}: {image} is not pinned to a patch release"


def test_stateful_services_keep_their_data_in_volumes(compose):
    mounts = {name: {str(v).split(":")[1] for v in spec.get("volumes", []) if not str(v).startswith("./")}
              for name, spec in compose["services"].items()}
    assert "/var/lib/rabbitmq" in mounts["rabbitmq"] and "/data/db" in mounts["mongo"]
    assert "/prometheus" in mounts["prometheus"] and "/var/lib/grafana" in mounts["grafana"]
    assert "/backups" in mounts["backup"]
    assert {"rabbitmq-data", "mongo-data", "prometheus-data", "grafana-data", "backups"} <= set(compose["volumes"])


def test_the_backup_dumps_mongo_and_rabbitmq_definitions_with_retention(compose):
    """compose runs deploy/backup.py, the command tests/integration/test_backup.py runs
    natively (backup, then restore) against the stand-in and RabbitMQ."""
    backup = compose["services"]["backup"]
    assert backup["entrypoint"] == ["python", "-m", "deploy.backup"] and backup["command"] == ["run"]
    environment = backup["environment"]
    assert "authSource=admin" in environment["MONGO_URI"] and environment["BACKUP_DIR"] == "/backups"
    assert environment["RABBITMQ_MANAGEMENT_USER"] == "ops" and "RABBITMQ_OPS_PASSWORD" in \
        environment["RABBITMQ_MANAGEMENT_PASSWORD"]
    assert {"BACKUP_INTERVAL_SECONDS", "BACKUP_RETENTION_DAYS"} <= set(environment)
    assert {backup["depends_on"][s]["condition"] for s in ("mongo", "rabbitmq")} == {"service_healthy"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docker compose run --rm backup restore" in readme, "the README documents the restore"
