"""services/routing/duty_flows.py over in-memory repositories: roster validation and
versions, the assignee of a new case, a manager's reassignment."""
from collections import Counter
from datetime import datetime, time, timezone

import pytest

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.access import Principal, scope_of
from closeloop_shared.contract import CaseStatus
from services.routing import duty_flows, ladder, lifecycle
from tests.fixtures import ROOT
from tests.unit.fakes import FakeCases

CHART = org.load(ROOT / "deploy/seeds/org.yaml")
STORE = "SH-XH-001"
T0 = datetime(2026, 11, 25, 4, 0, tzinfo=timezone.utc)  # 12:00 in Shanghai, a Wednesday
MANAGER = Principal.for_staff(CHART.staff["sh-xh-mg"], "yueyan")
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]


class FakeRosters:
    """RosterRepository's get/put in memory (conditional on the version)."""

    cache_key = "test.rosters"

    def __init__(self):
        self.docs = {}

    def get(self, store_id):
        return self.docs.get(store_id)

    def put(self, roster_doc, expected_version, actor, now):
        if self.docs.get(roster_doc["store_id"], {"version": 0})["version"] != expected_version:
            return False
        self.docs[roster_doc["store_id"]] = dict(roster_doc, version=expected_version + 1, updated_by=actor,
                                                 created_at=now)
        return True


class DutyCases(FakeCases):
    def active_assigned_at(self, store_id, staff_ids):
        return [d for d in self.docs.values() if d["store_id"] == store_id
                and d["assignee"]["staff_id"] in staff_ids and CaseStatus(d["status"]) in lifecycle.ACTIVE]

    def active_counts_at(self, store_id, staff_ids):
        return Counter(d["assignee"]["staff_id"] for d in self.active_assigned_at(store_id, staff_ids))


def shift(shift_id, start, end, staff_ids, **when):
    return {"shift_id": shift_id, "start": time(start), "end": time(end), "staff_ids": staff_ids,
            "weekdays": when.get("weekdays", EVERY_DAY), "date": when.get("date")}


def case(case_id, staff_id, status=CaseStatus.ASSIGNED):
    return {"_id": case_id, "case_number": f"CL-{case_id}", "store_id": STORE, "category": "booking",
            "severity": "low", "status": status.value, "assignee": CHART.staff[staff_id].as_dict(),
            "version": 0, "locale": "zh-CN", "submitted_at": T0, "timeline": []}


@pytest.mark.parametrize("shifts, field", [
    ([shift("d", 9, 18, ["hz-xh-s1"])], "shifts.0.staff_ids"),           # another store's
    ([shift("d", 9, 18, ["sh-xh-s1"]), shift("d", 18, 22, ["sh-xh-rv"])], "shifts"),
    ([shift("d", 9, 18, ["sh-xh-s1"], weekdays=[])], "shifts.0"),         # neither weekdays nor a date
    ([shift("d", 9, 9, ["sh-xh-s1"])], "shifts.0.end"),
])
def test_a_roster_is_refused_with_the_field_at_fault(shifts, field):
    rosters = FakeRosters()
    with pytest.raises(duty_flows.RosterRefused) as refused:
        duty_flows.set_roster(rosters, CHART, STORE, shifts, None, "sh-xh-mg", T0)
    assert (refused.value.status, refused.value.field) == (422, field) and rosters.docs == {}


def test_roster_versions_guard_concurrent_writers_and_unknown_stores_are_404():
    rosters = FakeRosters()
    first = duty_flows.set_roster(rosters, CHART, STORE, [shift("d", 9, 18, ["sh-xh-s1", "sh-xh-s1"])],
                                  None, "sh-xh-mg", T0)
    assert first.version == 1 and first.shifts[0].staff_ids == ("sh-xh-s1",)
    assert duty_flows.set_roster(rosters, CHART, STORE, [], 1, "sh-xh-sv", T0).version == 2
    with pytest.raises(duty_flows.RosterRefused) as stale:
        duty_flows.set_roster(rosters, CHART, STORE, [], 1, "sh-xh-sv", T0)
    assert stale.value.status == 409
    with pytest.raises(duty_flows.RosterRefused) as unknown:
        duty_flows.set_roster(rosters, CHART, "NOPE", [], None, "sh-xh-mg", T0)
    assert unknown.value.status == 404
    assert duty_flows.roster_view(None, "HZ-XH-002") == {"store_id": "HZ-XH-002", "version": 0, "shifts": []}


def test_a_new_case_goes_to_the_fitting_person_on_duty_with_the_fewest_open_cases():
    rosters, cases = FakeRosters(), DutyCases()
    duty_flows.set_roster(rosters, CHART, STORE, [shift("d", 9, 18, ["sh-xh-s1", "sh-xh-rv", "sh-xh-sv"])],
                          None, "sh-xh-mg", T0)
    cases.insert(case("c1", "sh-xh-rv"))
    cases.insert(case("c2", "sh-xh-s1", CaseStatus.CLOSED))  # closed cases do not count
    chosen = duty_flows.assignee_for(cases, rosters, CHART, STORE, "booking", "low", T0)
    assert chosen.on_duty and chosen.person.staff_id == "sh-xh-s1"
    night = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)  # 23:00: nobody on duty
    assert duty_flows.assignee_for(cases, rosters, CHART, STORE, "booking", "low", night).on_duty is False


def test_a_manager_reassigns_within_the_stores_chain():
    cases = DutyCases()
    cases.insert(case("c1", "sh-xh-s1"))
    scope = scope_of(MANAGER, CHART)
    moved, events = duty_flows.reassign(cases, CHART, "c1", "rm-east", "区域经理接手", MANAGER, scope, T0)
    assert moved["assignee"]["staff_id"] == "rm-east"
    entry = moved["timeline"][-1]
    assert (entry["action"], entry["actor"], entry["previous"], entry["assignee"], entry["note"]) == \
        ("reassigned", "sh-xh-mg", "sh-xh-s1", "rm-east", "区域经理接手")
    payload = ev.load(ev.CASE_REASSIGNED, events[0]["payload"])
    assert payload["reason"] == "manager" and payload["previous_assignee"]["staff_id"] == "sh-xh-s1"
    for target, status in (("rm-east", 409), ("hz-xh-s1", 422), ("rm-south", 422)):
        with pytest.raises(duty_flows.ReassignRefused) as refused:
            duty_flows.reassign(cases, CHART, "c1", target, "x", MANAGER, scope, T0)
        assert refused.value.status == status
    cases.insert(case("c2", "sh-xh-s1", CaseStatus.CLOSED))
    with pytest.raises(lifecycle.ActionRefused):
        duty_flows.reassign(cases, CHART, "c2", "sh-xh-sv", "x", MANAGER, scope, T0)


def test_a_reassigned_case_on_the_bottom_rung_names_its_new_owner_there():
    cases = DutyCases()
    rungs = ladder.resolve_rungs(CHART, STORE, assignee_id="sh-xh-s1")
    cases.insert(dict(case("c1", "sh-xh-s1"), ladder=ladder.start(rungs, "low", T0).to_doc()))
    moved, _ = duty_flows.reassign(cases, CHART, "c1", "sh-xh-rv", "换人跟进", MANAGER, scope_of(MANAGER, CHART), T0)
    assert moved["ladder"]["people"] == ["sh-xh-rv"]
    assert moved["ladder"]["notes"][-1]["kind"] == "handed_over"


def test_routing_keeps_a_roster_until_it_expires_or_changes_through_this_process():
    rosters = FakeRosters()
    rosters.cache_key = f"test.rosters.{id(rosters)}"  # entries of no other test
    assert duty_flows.roster_for(rosters, STORE, 60) is None
    rosters.docs[STORE] = {"store_id": STORE, "shifts": [], "version": 1}  # written by another replica
    assert duty_flows.roster_for(rosters, STORE, 60) is None               # not seen within the 60 s
    assert duty_flows.roster_for(rosters, STORE).version == 1              # uncached reads see it
    set_through_here = duty_flows.set_roster(rosters, CHART, STORE, [shift("d", 9, 18, ["sh-xh-s1"])], 1,
                                             "sh-xh-mg", T0)
    assert duty_flows.roster_for(rosters, STORE, 60) == set_through_here   # at once
