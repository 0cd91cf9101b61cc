"""services/routing/flows.py with an in-memory repository (no broker, no Mongo)."""
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.access import Principal, Scope, scope_of
from closeloop_shared.contract import Role
from services.routing import case_flows, deadline_flows, flows, ladder, organisation
from tests.unit.fakes import FakeCases, rules

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
# The store's other clerk (sh-xh-rv) is busier: new cases at SH-XH-001 go to sh-xh-s1.
RULES = rules(open_counts={"sh-xh-rv": 1})
CALENDARS = RULES.calendar_of  # store_id -> the store's business calendar
ACK = ladder.DEFAULT_TIMEOUTS  # each rung's time to acknowledge
POS_CLIENT = {"client_id": "pos", "name": "POS", "brand_id": "yueyan", "permissions": ["case:read"]}


def staff(staff_id, chart=CHART):
    """(principal, scope) of a staff member as the organisation has them."""
    person = chart.staff[staff_id]
    principal = Principal.for_staff(person, chart.brand_of(person))
    return principal, scope_of(principal, chart)


def integration(client=POS_CLIENT, chart=CHART):
    principal = Principal.for_integration(client)
    return principal, scope_of(principal, chart)


CLERK, CLERK_SCOPE = staff("sh-xh-s1")
MANAGER, MANAGER_SCOPE = staff("sh-xh-mg")


def submitted(store="SH-XH-001", channel="hotline", content="预约时间被改了也没人通知", submitted_by=None):
    return ev.load(ev.CASE_SUBMITTED, ev.dump(ev.CASE_SUBMITTED, {
        "case_id": uuid.uuid4().hex, "case_number": "CL-20261124-000001", "store_id": store,
        "store_name": "店", "channel": channel, "customer": {"name": "陈女士", "phone": "+8613912345678"},
        "content": content, "occurred_at": T0, "submitted_at": T0, "submitted_by": submitted_by}))


def kinds(events):
    return [e["type"] for e in events]


def test_route_assigns_store_staff_and_is_idempotent():
    cases, event = FakeCases(), submitted()
    case, events = flows.route(cases, CHART, RULES, event, T0)
    assert kinds(events) == [ev.CASE_ROUTED]
    # first checked when the store staff's time to acknowledge runs out
    assert case["assignee"]["staff_id"] == "sh-xh-s1" and case["next_check_at"] == T0 + ACK[ladder.STORE_STAFF]
    again, events = flows.route(cases, CHART, RULES, event, T0 + timedelta(seconds=5))
    assert events == [] and again["routed_at"] == T0


def test_route_keeps_the_submitter():
    by = {"kind": "integration", "client_id": "pos", "staff_id": None}
    case, _ = flows.route(FakeCases(), CHART, RULES, submitted(submitted_by=by), T0)
    assert case["submitted_by"] == by


def test_a_case_of_the_other_brand_climbs_that_brand_s_ladder():
    case, _ = flows.route(FakeCases(), CHART, RULES, submitted(store="BJ-CY-101"), T0)
    assert case["assignee"]["staff_id"] == "bj-cy-s1"


def test_referral_is_routed_to_the_store_manager_who_must_acknowledge_before_the_report_warns():
    case, events = flows.route(FakeCases(), CHART, RULES, submitted(channel="media"), T0)
    assert kinds(events) == [ev.CASE_ROUTED]  # no climb at routing: the store manager's rung comes first
    assert events[0]["payload"]["assignee"]["role"] == "store_manager"
    assert case["assignee"]["role"] == "store_manager" and "report" in case["clocks"]
    # the store manager's 2 h to acknowledge run out before the 8 h report clock warns (at 6 h)
    assert case["clocks"]["report"]["warn_at"] == T0 + timedelta(hours=6)
    assert case["next_check_at"] == T0 + ACK[ladder.STORE_MANAGER] == T0 + timedelta(hours=2)


def test_the_deadline_scan_escalates_once_per_rung_left_unacknowledged():
    cases = FakeCases()
    flows.route(cases, CHART, RULES, submitted(), T0)
    unacknowledged = T0 + ACK[ladder.STORE_STAFF]
    assert deadline_flows.check_due(cases, CHART, RULES, unacknowledged - timedelta(seconds=1), grace=timedelta(0)) == []
    [(updated, events)] = deadline_flows.check_due(cases, CHART, RULES, unacknowledged, grace=timedelta(0))
    assert kinds(events) == [ev.CASE_ESCALATED] and events[0]["payload"]["reason"] == "unacknowledged"
    assert updated["assignee"]["role"] == "supervisor"
    assert deadline_flows.check_due(cases, CHART, RULES, unacknowledged, grace=timedelta(0)) == []  # nothing new at the same moment
    [(updated, _)] = deadline_flows.check_due(cases, CHART, RULES, unacknowledged + ACK[ladder.SUPERVISOR], grace=timedelta(0))
    assert updated["rung"] == 2 and updated["assignee"]["role"] == "store_manager"


def test_a_broken_case_does_not_stall_the_others():
    cases = FakeCases()
    broken, _ = flows.route(cases, CHART, RULES, submitted(), T0)
    cases.docs[broken["_id"]]["store_id"] = "CLOSED-STORE"  # its store left the org chart
    healthy, _ = flows.route(cases, CHART, RULES, submitted(), T0 + timedelta(minutes=1))
    now = T0 + timedelta(hours=30)
    won = deadline_flows.check_due(cases, CHART, RULES, now, grace=timedelta(0))
    assert [case["_id"] for case, _ in won] == [healthy["_id"]]
    assert cases.get(broken["_id"])["next_check_at"] == now + deadline_flows.RETRY_BROKEN_AFTER  # looked at again


# -- who may see and act on a case (object level) ---------------------------------------

def routed_case(cases, **kwargs):
    case, _ = flows.route(cases, CHART, RULES, submitted(**kwargs), T0)
    return case


@pytest.mark.parametrize("staff_id, sees", [
    ("sh-xh-s1", True), ("sh-xh-sv", True), ("sh-xh-mg", True),   # the store
    ("rm-east", True), ("cs-001", True), ("gm-001", True),        # its region, its brand
    ("ops-admin", True),                                          # everything (read only)
    ("hz-xh-mg", False), ("hz-xh-s1", False),                     # another store, same region
    ("rm-south", False),                                          # another region
    ("my-gm", False), ("bj-cy-mg", False),                        # another brand
])
def test_get_case_within_scope_only(staff_id, sees):
    cases = FakeCases()
    case = routed_case(cases)
    _, scope = staff(staff_id)
    if sees:
        assert flows.get_case(cases, case["_id"], scope)["_id"] == case["_id"]
    else:
        with pytest.raises(flows.CaseNotFound):
            flows.get_case(cases, case["_id"], scope)


def test_an_integration_sees_only_the_cases_it_submitted():
    cases = FakeCases()
    own = routed_case(cases, submitted_by={"kind": "integration", "client_id": "pos", "staff_id": None})
    crm = routed_case(cases, submitted_by={"kind": "integration", "client_id": "crm", "staff_id": None})
    by_staff = routed_case(cases, submitted_by={"kind": "staff", "client_id": None, "staff_id": "sh-xh-s1"})
    legacy = routed_case(cases)  # no submitter recorded
    _, scope = integration()
    assert flows.get_case(cases, own["_id"], scope)["_id"] == own["_id"]
    for other in (crm, by_staff, legacy):
        with pytest.raises(flows.CaseNotFound):
            flows.get_case(cases, other["_id"], scope)
    # and of its own, only those at stores still in its scope
    _, limited = integration(dict(POS_CLIENT, store_ids=["HZ-XH-002"]))
    with pytest.raises(flows.CaseNotFound):
        flows.get_case(cases, own["_id"], limited)


def test_an_integration_of_another_brand_never_sees_a_case_even_with_the_same_client_id():
    cases = FakeCases()
    case = routed_case(cases, submitted_by={"kind": "integration", "client_id": "pos", "staff_id": None})
    _, scope = integration(dict(POS_CLIENT, brand_id="muyun"))
    with pytest.raises(flows.CaseNotFound):
        flows.get_case(cases, case["_id"], scope)


def test_the_system_reaches_every_case():
    cases = FakeCases()
    case = routed_case(cases, store="BJ-CY-101")
    assert flows.get_case(cases, case["_id"], flows.EVERYWHERE)["_id"] == case["_id"]


# -- the timeline names the principal (the actions: tests/unit/test_lifecycle.py) ----------

def test_an_integration_is_named_as_such_in_the_timeline():
    principal, _ = integration()
    assert principal.actor == "integration:pos"
    assert CLERK.actor == "sh-xh-s1"


# -- the case as staff see it --------------------------------------------------------------

def test_public_view_masks_the_customer_for_managers_and_shows_it_to_the_store():
    cases = FakeCases()
    case = routed_case(cases)
    assert flows.public_view(case, CLERK)["customer"]["phone"] == "+8613912345678"
    rm, _ = staff("rm-east")
    shown = flows.public_view(case, rm)
    assert shown["customer"]["phone"] == "139****5678"
    assert shown["case_id"] == case["_id"] and shown["rung_role"] == "store_staff"
    assert not {"_id", "outbox", "outbox_pending", "version"} & set(shown)
    assert case["customer"]["phone"] == "+8613912345678"  # the stored case is untouched


def test_fake_find_stays_within_scope():
    cases = FakeCases()
    here = routed_case(cases)
    routed_case(cases, store="HZ-XH-002")
    routed_case(cases, store="BJ-CY-101")
    assert [c["_id"] for c in cases.find(CLERK_SCOPE)] == [here["_id"]]
    assert cases.find(CLERK_SCOPE, store_id="HZ-XH-002") == []
    rm, rm_scope = staff("rm-east")
    assert {c["store_id"] for c in cases.find(rm_scope)} == {"SH-XH-001", "HZ-XH-002"}
    assert len(cases.find(Scope(None))) == 3


# -- handing over the cases of someone who left their post --------------------------------

def active_case(cases, store="SH-XH-001", **kwargs):
    return routed_case(cases, store=store, **kwargs)


def moved(chart, staff_id, role, **unit):
    """The organisation after a move, as organisation.update_staff means to make it
    (built directly: update_staff itself fails on moves, see test_organisation.py)."""
    person = replace(chart.staff[staff_id], role=Role(role),
                     **{"store_id": None, "region_id": None, "brand_id": None, **unit})
    return replace(chart, staff={**chart.staff, staff_id: person})


def test_hand_over_moves_active_cases_to_the_ladder_s_successor():
    cases = FakeCases()
    mine = [active_case(cases), active_case(cases)]
    case_flows.respond(cases, CALENDARS, mine[1]["_id"], CLERK, CLERK_SCOPE, "已回电", T0 + timedelta(hours=1))
    done = active_case(cases)
    case_flows.resolve(cases, CHART, done["_id"], None, "", CLERK, CLERK_SCOPE, T0 + timedelta(hours=1))
    others = active_case(cases, store="HZ-XH-002")
    after = organisation.deactivate_staff(CHART, "sh-xh-s1")
    now = T0 + timedelta(hours=5)

    handed = flows.hand_over_cases_of(cases, after, "sh-xh-s1", now)

    assert sorted(case["_id"] for case, _ in handed) == sorted(c["_id"] for c in mine)
    for case, events in handed:
        assert case["assignee"]["staff_id"] == "sh-xh-rv"  # the store's other store_staff
        assert case["rung"] == 0
        entry = {k: v for k, v in case["timeline"][-1].items() if k != "seq"}
        assert entry == {"at": now, "action": "reassigned", "actor": "system", "reason": "staff_deactivated",
                         "previous": "sh-xh-s1", "assignee": "sh-xh-rv"}
        [event] = events
        assert event["type"] == ev.CASE_REASSIGNED
        payload = ev.load(ev.CASE_REASSIGNED, event["payload"])
        assert payload["previous_assignee"]["staff_id"] == "sh-xh-s1"
        assert payload["assignee"]["staff_id"] == "sh-xh-rv"
        assert (payload["case_id"], payload["reassigned_at"]) == (case["_id"], now)
        assert event in cases.get(case["_id"])["outbox"]  # stored; the returned case has no outbox
    assert cases.get(done["_id"])["assignee"]["staff_id"] == "sh-xh-s1"     # history stays
    assert cases.get(others["_id"])["assignee"]["staff_id"] == "hz-xh-s1"
    assert flows.hand_over_cases_of(cases, after, "sh-xh-s1", now) == []    # nothing left


def test_hand_over_climbs_when_nobody_is_left_on_the_rung():
    cases = FakeCases()
    case = active_case(cases, store="GZ-TH-003")   # its only store_staff: gz-th-s1
    after = organisation.deactivate_staff(CHART, "gz-th-s1")
    [(handed, events)] = flows.hand_over_cases_of(cases, after, "gz-th-s1", T0)
    assert handed["assignee"]["staff_id"] == "gz-th-mg" and handed["rung"] == 0


def test_hand_over_of_an_escalated_case_keeps_its_rung():
    cases = FakeCases()
    case = active_case(cases, channel="media")      # the store manager's, who does not acknowledge in time
    [(case, _)] = deadline_flows.check_case(cases, CHART, RULES, case["_id"], T0 + ACK[ladder.STORE_MANAGER])
    assert (case["rung"], case["assignee"]["staff_id"]) == (3, "rm-east")
    after = organisation.deactivate_staff(CHART, "rm-east")
    [(handed, _)] = flows.hand_over_cases_of(cases, after, "rm-east", T0)
    assert (handed["rung"], handed["assignee"]["staff_id"]) == (3, "cs-001")


def test_hand_over_after_a_move_to_another_store():
    cases = FakeCases()
    case = active_case(cases)
    after = moved(CHART, "sh-xh-s1", "store_staff", store_id="HZ-XH-002")
    assert organisation.left_post(CHART, after, "sh-xh-s1")
    [(handed, _)] = flows.hand_over_cases_of(cases, after, "sh-xh-s1", T0)
    assert handed["assignee"]["staff_id"] == "sh-xh-rv"


def test_hand_over_skips_a_case_that_moved_meanwhile():
    cases = FakeCases()
    case = active_case(cases)
    after = organisation.deactivate_staff(CHART, "sh-xh-s1")
    found = cases.active_assigned_to
    cases.active_assigned_to = lambda staff_id: [
        *found(staff_id),
        *[{"_id": c["_id"]} for c in [cases.get(case["_id"])]]]  # listed twice: moved by the first pass
    handed = flows.hand_over_cases_of(cases, after, "sh-xh-s1", T0)
    assert [events for _, events in handed][1] == []
    assert [e["action"] for e in cases.get(case["_id"])["timeline"]].count("reassigned") == 1


def test_hand_over_to_the_same_person_is_no_handover():
    chart = organisation.deactivate_staff(organisation.deactivate_staff(CHART, "sh-xh-sv"), "sh-xh-rv")
    cases = FakeCases()
    case, _ = flows.route(cases, chart, rules(chart=chart), submitted(), T0)
    assert case["assignee"]["staff_id"] == "sh-xh-s1"
    after = moved(chart, "sh-xh-s1", "supervisor", store_id="SH-XH-001")
    assert organisation.left_post(chart, after, "sh-xh-s1")
    handed = flows.hand_over_cases_of(cases, after, "sh-xh-s1", T0)
    assert all(events == [] for _, events in handed)


def test_a_brand_with_stores_keeps_its_general_manager_so_hand_overs_never_fail():
    """A closed store's open cases still climb its ladder: the brand's last general
    manager cannot be deactivated while it has stores, open or closed."""
    cases = FakeCases()
    case, _ = flows.route(cases, CHART, RULES, submitted(store="BJ-CY-101", channel="media"), T0)
    [(case, _)] = deadline_flows.check_case(cases, CHART, RULES, case["_id"], T0 + ACK[ladder.STORE_MANAGER])
    assert case["assignee"]["staff_id"] == "my-gm"   # muyun has no regional manager nor customer service
    assert any(e["action"] == "ladder_skipped" and e["role"] == "regional_manager" for e in case["timeline"])
    closed = organisation.update_store(CHART, "BJ-CY-101", {"status": "closed"})
    with pytest.raises(organisation.OrgRefused) as refused:
        organisation.deactivate_staff(closed, "my-gm")
    assert refused.value.code == "brand_needs_general_manager"
    handed = flows.hand_over_cases_of(cases, closed, "my-gm", T0 + timedelta(hours=1))
    assert [events for _, events in handed] == [[]]  # still theirs: nothing to hand over
