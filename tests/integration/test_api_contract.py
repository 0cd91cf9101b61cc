"""Fuzz the HTTP edges from their own OpenAPI documents (schemathesis): whatever a
client sends, the answer is documented, never a 5xx, and every 4xx carries the
machine-readable error shape."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from nameko.constants import WEB_SERVER_CONFIG_KEY
from nameko.testing.utils import find_free_port

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
from tests.fixtures import nameko_config, new_mongo_prefix

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=4, deadline=None,  # per operation: ~100 operations
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def edge(fresh_rabbit_config, mongo_uri, smtp_sink, token_keys, module_container_factory):
    """edge(service_class) -> the base URL of that service running in a container. One
    container per service serves all of its operations (starting one per operation cost
    about a minute of CI); each service has its own vhost and databases, as each
    operation had before, and only one runs at a time, so nothing another service
    publishes is handled here."""
    running = {}  # {service_class: (container, base URL)}: one service at a time

    def url(service_class):
        if service_class not in running:
            for container, _ in running.values():
                container.kill()
            running.clear()
            address = f"127.0.0.1:{find_free_port()}"
            config = dict(nameko_config(fresh_rabbit_config(), mongo_uri, new_mongo_prefix(), smtp_sink, token_keys),
                          **{WEB_SERVER_CONFIG_KEY: address})
            container = module_container_factory(service_class, config)
            container.start()
            running[service_class] = (container, "http://" + address)
        return running[service_class][1]
    return url


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
def intake_url(edge):
    return edge(IntakeService)


@pytest.fixture
def routing_url(edge):
    return edge(RoutingService)


@pytest.fixture
def followup_url(edge):
    return edge(FollowupService)


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
def notify_url(edge):
    return edge(NotifyService)


@pytest.fixture
def reporting_url(edge):
    return edge(ReportingService)


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
