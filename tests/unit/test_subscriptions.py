"""events.SUBSCRIPTIONS (from which every service pre-declares the bus's queues) says
exactly what the services' @event_handler entrypoints subscribe to."""
from nameko.events import EventHandler

from closeloop_shared import events as ev
from closeloop_shared.bus import subscriber_queues
from services.followup.service import FollowupService
from services.intake.service import IntakeService
from services.notify.service import NotifyService
from services.reporting.service import ReportingService
from services.routing.service import RoutingService

SERVICES = (IntakeService, RoutingService, FollowupService, NotifyService, ReportingService)


def declared_handlers():
    found = set()
    for service in SERVICES:
        for name in dir(service):
            for entrypoint in getattr(getattr(service, name), "nameko_entrypoints", ()):
                if isinstance(entrypoint, EventHandler):
                    found.add((entrypoint.source_service, entrypoint.event_type, service.name, name))
    return found


def test_catalogue_matches_the_handlers_in_both_directions():
    catalogue = {(ev.EMITTERS[event_type], event_type, service, method)
                 for event_type, consumers in ev.SUBSCRIPTIONS.items() for service, method in consumers}
    assert catalogue == declared_handlers()


def test_queue_names_are_nameko_s():
    names = {queue.name for queue in subscriber_queues({})}
    assert "evt-intake-case_submitted--routing.on_case_submitted" in names
    assert len(names) == sum(len(c) for c in ev.SUBSCRIPTIONS.values())


def test_every_service_but_the_owner_follows_the_organisation_and_the_integrations():
    """routing owns both; every other service keeps its own copy (for scopes, open
    stores and to tell an unknown key from a forbidden one)."""
    for event_type in (ev.ORG_CHANGED, ev.INTEGRATION_CHANGED):
        followers = {service for service, _ in ev.SUBSCRIPTIONS[event_type]}
        assert followers == {s.name for s in SERVICES} - {ev.EMITTERS[event_type]} == set(ev.IDENTITY_FOLLOWERS)
    assert ev.SUBSCRIPTIONS[ev.CASE_REASSIGNED] == (("notify", "on_case_reassigned"),)


def test_every_subscribed_event_has_an_emitter_and_a_schema():
    assert set(ev.SUBSCRIPTIONS) <= set(ev.EMITTERS) == set(ev.SCHEMAS)
