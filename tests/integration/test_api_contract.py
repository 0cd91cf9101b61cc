"""Fuzz the HTTP edges from their own OpenAPI documents (schemathesis): whatever a
client sends, the answer is documented, never a 5xx, and every 4xx carries the
machine-readable error shape."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from services.followup.schemas import OPENAPI as FOLLOWUP_API
from services.followup.service import FollowupService
from services.intake.schemas import OPENAPI as INTAKE_API
from services.intake.service import IntakeService
from services.routing.schemas import OPENAPI as ROUTING_API
from services.routing.service import RoutingService

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])


def base_url(container_factory, service_class, service_config, web_config):
    container = container_factory(service_class, dict(service_config, **web_config))
    container.start()
    return "http://" + web_config["WEB_SERVER_ADDRESS"]


def check(case, url):
    response = case.call(base_url=url)
    assert response.status_code < 500, response.text
    # 405 answers a method the document does not list (schemathesis tries those too)
    documented = set(case.operation.definition.raw["responses"]) | {"405"}
    assert str(response.status_code) in documented, (response.status_code, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"]


@pytest.fixture
def intake_url(container_factory, service_config, web_config):
    return base_url(container_factory, IntakeService, service_config, web_config)


@pytest.fixture
def routing_url(container_factory, service_config, web_config):
    return base_url(container_factory, RoutingService, service_config, web_config)


@pytest.fixture
def followup_url(container_factory, service_config, web_config):
    return base_url(container_factory, FollowupService, service_config, web_config)


@schemathesis.openapi.from_dict(INTAKE_API).parametrize()
@FUZZ
def test_intake_edge(case, intake_url):
    check(case, intake_url)


@schemathesis.openapi.from_dict(ROUTING_API).parametrize()
@FUZZ
def test_routing_edge(case, routing_url):
    check(case, routing_url)


@schemathesis.openapi.from_dict(FOLLOWUP_API).parametrize()
@FUZZ
def test_followup_edge(case, followup_url):
    check(case, followup_url)


def test_services_serve_their_openapi(intake_url):
    import requests
    spec = requests.get(intake_url + "/openapi.json", timeout=5).json()
    assert "FeedbackIn" in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["FeedbackIn"]["properties"]["channel"]["enum"][0] == "in_store"
