"""A store's time zone changed through routing's organisation API is announced to
followup at once (store_calendar_changed in the new zone), not at the next periodic
announcement; against real RabbitMQ and the MongoDB-protocol server."""
import json

import eventlet
import pytest

from closeloop_shared import org

from closeloop_shared import events as ev
from services.routing.service import RoutingService
from tests.fixtures import ROOT, wait_for

pytestmark = pytest.mark.integration
STORE = "SH-XH-001"
STORES = org.load(ROOT / "deploy/seeds/org.yaml").stores


def test_a_new_time_zone_is_announced_at_once(container_factory, service_config, web_config, record_events,
                                               web_session, token_keys):
    heard = record_events(ev.STORE_CALENDAR_CHANGED)
    config = dict(service_config, **web_config, ORG_ANNOUNCE_INTERVAL_SECONDS=3600)  # no periodic one meanwhile
    container_factory(RoutingService, config).start()
    wait_for(lambda: len({c["store_id"] for c in heard.of_type(ev.STORE_CALENDAR_CHANGED)}) == len(STORES),
             what="every store announced at start")
    eventlet.sleep(0.5)

    def of_store():
        return [c for c in heard.of_type(ev.STORE_CALENDAR_CHANGED) if c["store_id"] == STORE]
    started = len(of_store())
    answer = web_session.patch(f"/v1/org/stores/{STORE}", data=json.dumps({"timezone": "Asia/Urumqi"}),
                               headers={"Content-Type": "application/json", **token_keys.headers("ops-admin")})
    assert answer.status_code == 200, answer.text
    (announced,) = wait_for(lambda: of_store()[started:], what="the new zone")
    assert announced["timezone"] == "Asia/Urumqi"

    renamed = web_session.patch(f"/v1/org/stores/{STORE}", data=json.dumps({"name": "徐汇旗舰店"}),
                                headers={"Content-Type": "application/json", **token_keys.headers("ops-admin")})
    assert renamed.status_code == 200
    eventlet.sleep(1)
    assert len(of_store()) == started + 1  # a new name moves no hour: nothing more announced
