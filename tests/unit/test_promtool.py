"""Prometheus's own checker on our files: `promtool check rules` (alerts.yml), `promtool
check config` (prometheus.yml with the rule file it loads) and `promtool test rules`
(alerts_test.yml: the alerts fire when they should, and only then).

promtool comes with Debian's `prometheus` package (.ci/run installs it); without it these
tests are skipped, saying so."""
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install --no-install-recommends prometheus)")


def promtool(*args, cwd=None):
    done = subprocess.run([PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_the_alert_rules_are_valid_prometheus_rules():
    assert "SUCCESS" in promtool("check", "rules", DEPLOY / "alerts.yml")


def test_the_prometheus_config_is_valid_with_the_rules_it_loads(tmp_path):
    # compose mounts alerts.yml at /etc/prometheus/alerts.yml; here it sits beside the copy
    config = (DEPLOY / "prometheus.yml").read_text(encoding="utf-8")
    assert "/etc/prometheus/alerts.yml" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml")), encoding="utf-8")
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    output = promtool("check", "config", tmp_path / "prometheus.yml")
    assert "1 rule files found" in output


def test_the_alerts_fire_as_their_unit_tests_expect():
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml", cwd=DEPLOY)


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """Each Grafana query becomes a recording rule, which promtool parses."""
    import json

    import yaml

    def exprs(panels):
        for panel in panels:
            yield from (t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            yield from exprs(panel.get("panels", []))

    rules = []
    for path in sorted((DEPLOY.parent / "grafana" / "dashboards").glob("*.json")):
        for n, expr in enumerate(exprs(json.loads(path.read_text(encoding="utf-8"))["panels"])):
            # Grafana's own variables stand for a range
            expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{n}", "expr": expr})
    assert len(rules) >= 40
    (tmp_path / "dashboards.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}),
                                             encoding="utf-8")
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", tmp_path / "dashboards.yml")
