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
from services.notify.schemas import OPENAPI as NOTIFY_API
from services.notify.service import NotifyService
from services.reporting.schemas import OPENAPI as REPORTING_API
from services.reporting.service import ReportingService
from services.routing.schemas import OPENAPI as ROUTING_API
from services.routing.service import RoutingService

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=4, deadline=None,  # per operation: ~100 operations, each its own container
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])


def base_url(container_factory, service_class, service_config, web_config):
    container = container_factory(service_class, dict(service_config, **web_config))
    container.start()
    return "http://" + web_config["WEB_SERVER_ADDRESS"]


def check(case, url, headers):
    response = case.call(base_url=url, headers=headers)
    assert response.status_code < 500, response.text
    # 405 answers a method the document does not list (schemathesis tries those too)
    documented = set(case.operation.definition.raw["responses"]) | {"405"}
    assert str(response.status_code) in documented, (response.status_code, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"]


@pytest.fixture
def as_general_manager(token_keys):
    """Fuzzed as the brand's general manager: case actions run, org management is
    refused (403, documented); unauthenticated calls are the access tests' job."""
    return token_keys.headers("gm-001")


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
def test_intake_edge(case, intake_url, as_general_manager):
    check(case, intake_url, as_general_manager)


@schemathesis.openapi.from_dict(ROUTING_API).parametrize()
@FUZZ
def test_routing_edge(case, routing_url, as_general_manager):
    check(case, routing_url, as_general_manager)


@schemathesis.openapi.from_dict(FOLLOWUP_API).parametrize()
@FUZZ
def test_followup_edge(case, followup_url, as_general_manager):
    check(case, followup_url, as_general_manager)


@pytest.fixture
def notify_url(container_factory, service_config, web_config):
    return base_url(container_factory, NotifyService, service_config, web_config)


@pytest.fixture
def reporting_url(container_factory, service_config, web_config):
    return base_url(container_factory, ReportingService, service_config, web_config)


@schemathesis.openapi.from_dict(NOTIFY_API).parametrize()
@FUZZ
def test_notify_edge(case, notify_url, as_general_manager):
    check(case, notify_url, as_general_manager)


@schemathesis.openapi.from_dict(REPORTING_API).parametrize()
@FUZZ
def test_reporting_edge(case, reporting_url, as_general_manager):
    check(case, reporting_url, as_general_manager)


def test_services_serve_their_openapi(intake_url):
    import requests
    spec = requests.get(intake_url + "/openapi.json", timeout=5).json()
    assert "FeedbackIn" in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["FeedbackIn"]["properties"]["channel"]["enum"][0] == "in_store"
