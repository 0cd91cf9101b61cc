"""Business calendars against the running routing service and the MongoDB-protocol
server: a store manager sets the store's hours and a closure, the general manager
publishes 2027's official list and a brand override, all read back (and through
`calendar_flows.calendar_for`, the engine's entry point); bad input is answered 422
naming the field."""
import json
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from closeloop_shared import org
from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import database_name
from services.routing import calendar_flows
from services.routing.calendar import library_year
from services.routing.repository import CalendarRepository
from tests.fixtures import ROOT
# routing as test_routing runs it
from tests.integration.test_routing import heard, routing, routing_config  # noqa: F401

pytestmark = pytest.mark.integration
STORE = "SH-XH-001"
SHANGHAI = ZoneInfo("Asia/Shanghai")
HOURS = {"weekly": {"mon": [{"start": "10:00", "end": "14:00"}, {"start": "15:00", "end": "21:00"}],
                    "fri": [{"start": "10:00", "end": "02:00"}]},
         "workday": [{"start": "09:00", "end": "18:00"}],
         "observes_holidays": True}
YEAR_2027 = {"holidays": [f"2027-10-0{d}" for d in range(1, 8)], "workdays": ["2027-09-26", "2027-10-09"],
             "source": "国务院办公厅关于2027年部分节假日安排的通知"}


def send(session, method, path, body, headers=None):
    return session.request(method, path, data=json.dumps(body, ensure_ascii=False).encode(),
                           headers={"Content-Type": "application/json", **(headers or {})})


def fields_of(response):
    assert response.status_code == 422, response.text
    return response.json()["error"]["fields"]


def incomplete_gauge(session):
    metrics = session.get("/metrics").text
    return float(re.search(r"^closeloop_routing_calendar_incomplete_years (\S+)$", metrics, re.M).group(1))


def local(*args):
    return datetime(*args, tzinfo=SHANGHAI).astimezone(timezone.utc)


def test_store_hours_closures_and_a_published_year(routing, routing_config, web_session, token_keys, mongo_client):
    path = f"/v1/calendars/stores/{STORE}"
    fresh = web_session.get(path).json()
    assert fresh["configured"] is False and fresh["weekly"]["tue"] == [{"start": "10:00", "end": "21:00"}]

    stored = send(web_session, "PUT", path, HOURS)
    assert stored.status_code == 200, stored.text
    read = web_session.get(path).json()
    assert read["configured"] and read["observes_holidays"] and read["timezone"] == "Asia/Shanghai"
    assert read["weekly"]["mon"] == HOURS["weekly"]["mon"] and read["weekly"]["sun"] == []
    assert read["weekly"]["fri"] == [{"start": "10:00", "end": "02:00"}]

    closed = send(web_session, "POST", f"{path}/closures",
                  {"first_day": "2027-03-01", "last_day": "2027-03-02", "reason": "装修"})
    assert closed.status_code == 201, closed.text
    assert web_session.get(path).json()["closures"][0]["reason"] == "装修"

    this_year = utcnow().year
    unknown = {y for y in (this_year, this_year + 1) if library_year(y) is None}
    assert incomplete_gauge(web_session) == len(unknown)  # set at start
    gm = token_keys.headers("gm-001")
    published = send(web_session, "PUT", "/v1/calendars/years/2027", YEAR_2027, gm)
    assert published.status_code == 200, published.text
    assert published.json()["source"] == "published" and "2027-09-26" in published.json()["workdays"]
    assert incomplete_gauge(web_session) == len(unknown - {2027})
    years = {y["year"]: y for y in web_session.get("/v1/calendars/years").json()["years"]}
    assert years[2027]["source"] == "published" and years[2026]["source"] == "library"

    override = {"overrides": [{"date": "2027-10-03", "kind": "custom", "slots": [{"start": "12:00", "end": "16:00"}],
                               "note": "国庆第三天门店开门"}]}
    assert send(web_session, "PUT", "/v1/calendars/brands/yueyan/overrides", override, gm).status_code == 200
    assert web_session.get("/v1/calendars/brands/yueyan/overrides").json()["overrides"][0]["kind"] == "custom"

    # what the SLA engine gets
    db = mongo_client[database_name(routing_config, "routing")]
    calendar = calendar_flows.calendar_for(CalendarRepository(db), org.load(ROOT / "deploy/seeds/org.yaml"), STORE)
    assert not calendar.is_open(local(2027, 10, 1, 12))         # published holiday
    assert calendar.is_open(local(2027, 9, 26, 12))             # published make-up Sunday: workday hours
    assert calendar.elapsed(local(2027, 10, 3), local(2027, 10, 4)) == timedelta(hours=4)  # the brand override
    assert not calendar.is_open(local(2027, 3, 1, 12))          # the closure
    assert calendar.is_open(local(2027, 3, 6, 1, 30))           # Friday's slot runs past midnight
    assert calendar.incomplete_years == frozenset()


def test_bad_input_is_answered_422_with_the_field(routing, web_session, token_keys):
    path = f"/v1/calendars/stores/{STORE}"
    overlapping = dict(HOURS, weekly={"mon": [{"start": "10:00", "end": "14:00"}, {"start": "13:00", "end": "15:00"}]})
    assert "weekly.mon" in fields_of(send(web_session, "PUT", path, overlapping))
    assert "workday.0.start" in fields_of(send(web_session, "PUT", path, dict(HOURS, workday=[
        {"start": "9:00", "end": "18:00"}])))
    assert "workday.0.end" in fields_of(send(web_session, "PUT", path, dict(HOURS, workday=[
        {"start": "09:00", "end": "09:00"}])))
    into_saturday = dict(HOURS, weekly={"fri": [{"start": "20:00", "end": "03:00"}],
                                        "sat": [{"start": "02:00", "end": "05:00"}]})
    assert "weekly.fri" in fields_of(send(web_session, "PUT", path, into_saturday))
    assert "last_day" in fields_of(send(web_session, "POST", f"{path}/closures",
                                        {"first_day": "2027-03-02", "last_day": "2027-03-01", "reason": "x"}))

    gm = token_keys.headers("gm-001")
    wrong_year = dict(YEAR_2027, holidays=["2027-10-01", "2028-01-01"])
    assert "holidays" in fields_of(send(web_session, "PUT", "/v1/calendars/years/2027", wrong_year, gm))
    both = dict(YEAR_2027, workdays=["2027-10-01"])
    assert "workdays" in fields_of(send(web_session, "PUT", "/v1/calendars/years/2027", both, gm))
    assert "year" in fields_of(send(web_session, "PUT", "/v1/calendars/years/1999", YEAR_2027, gm))
    no_slots = {"overrides": [{"date": "2027-10-03", "kind": "custom"}]}
    assert "overrides.0.slots" in fields_of(send(web_session, "PUT", "/v1/calendars/brands/yueyan/overrides",
                                                 no_slots, gm))
    # another brand's overrides and a store out of scope are not found
    assert send(web_session, "PUT", "/v1/calendars/brands/muyun/overrides", {"overrides": []}, gm).status_code == 404
    assert web_session.get("/v1/calendars/stores/BJ-CY-101").status_code == 404
