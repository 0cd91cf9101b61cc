"""services/routing/ladder.py: rungs from the store's chain, start by severity, climbing
on unacknowledged rungs, acknowledgement. Property tests over organisations where any
rung may be missing (nobody, or only deactivated people), plus named cases."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closeloop_shared import org
from closeloop_shared.contract import Role, Severity
from closeloop_shared.org import Brand, Organisation, Region, Staff, Store
from services.routing import ladder
from services.routing.ladder import GENERAL_MANAGER, REGIONAL, STORE_MANAGER, STORE_STAFF, SUPERVISOR
from tests.fixtures import ROOT

SEED = org.load(ROOT / "deploy/seeds/org.yaml")
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
PROPERTY = settings(max_examples=150, deadline=None)
SEVERITIES = st.sampled_from([s.value for s in Severity])
# who holds each place of the chain: (number of active people, number of deactivated ones)
PLACES = (Role.STORE_STAFF, Role.SUPERVISOR, Role.STORE_MANAGER, Role.REGIONAL_MANAGER,
          Role.CUSTOMER_SERVICE, Role.GENERAL_MANAGER)


def chain(holders):
    """One brand, region and store; holders[role] = (active, inactive) people."""
    staff = {}
    for role, (active, inactive) in holders.items():
        unit = ({"store_id": "S1"} if role in org.STORE_ROLES else
                {"region_id": "R1"} if role is Role.REGIONAL_MANAGER else {"brand_id": "B1"})
        for n in range(active + inactive):
            person = Staff(f"{role.value}-{n}", f"{role.value} {n}", role, active=n < active, **unit)
            staff[person.staff_id] = person
    return Organisation({"B1": Brand("B1", "品牌")}, {"R1": Region("R1", "区", "B1")},
                        {"S1": Store("S1", "店", "R1")}, staff)


holders = st.fixed_dictionaries({role: st.tuples(st.integers(0, 2), st.integers(0, 1)) for role in PLACES}) \
    .filter(lambda h: any(active for active, _ in h.values()))
actions = st.lists(st.one_of(
    st.tuples(st.just("climb"), st.integers(0, 10_000)),                 # seconds after the last step
    st.tuples(st.just("ack"), st.integers(0, 10_000), st.sampled_from(PLACES), st.integers(0, 1))),
    max_size=12)


def present_levels(rungs):
    return [r.level for r in rungs if r.present]


@PROPERTY
@given(holders, SEVERITIES)
def test_start_is_the_first_rung_held_from_the_severity_start(held, severity):
    rungs = ladder.resolve_rungs(chain(held), "S1")
    state = ladder.start(rungs, severity, T0)
    floor = ladder.start_level(severity)
    above = [level for level in present_levels(rungs) if level >= floor]
    assert state.level == (above[0] if above else present_levels(rungs)[-1])
    assert state.people == rungs[state.level].people and state.people
    skipped = {n.level for n in state.notes if n.kind is ladder.NoteKind.SKIPPED}
    assert skipped == {r.level for r in rungs[floor:state.level + 1] if not r.present} | \
        ({r.level for r in rungs[floor:] if not r.present} if not above else set())
    top = state.level == present_levels(rungs)[-1]
    assert (state.ack_due_at is None) == top and (ladder.next_at(state) is None) == top


@PROPERTY
@given(holders, SEVERITIES, actions)
def test_the_climb_never_skips_a_held_rung_never_passes_the_top_and_stops_at_an_acknowledgement(
        held, severity, steps):
    chart = chain(held)
    rungs = ladder.resolve_rungs(chart, "S1")
    levels = present_levels(rungs)
    state, now = ladder.start(rungs, severity, T0), T0
    for step in steps:
        now += timedelta(seconds=step[1])
        before = state
        if step[0] == "climb":
            state, notes = ladder.climb(state, rungs, now)
            if before.acknowledged or before.level == levels[-1]:
                assert state == before and notes == []
            else:
                assert state.level == min(level for level in levels if level > before.level)
                assert {n.level for n in notes if n.kind is ladder.NoteKind.SKIPPED} == \
                    set(range(before.level + 1, state.level))
                assert state.notified_at == now and state.people == rungs[state.level].people
        else:
            person = chart.staff.get(f"{step[2].value}-{step[3]}")
            if person is None:
                continue
            if ladder.may_acknowledge(state, person):
                state = ladder.acknowledge(state, person, now)
                assert state.acknowledged and ladder.next_at(state) is None
                if before.acknowledged:
                    assert state == before  # idempotent: the first acknowledgement stands
                else:
                    assert (state.acknowledged_by, state.acknowledged_at) == (person.staff_id, now)
            else:
                with pytest.raises(ladder.AcknowledgeRefused):
                    ladder.acknowledge(state, person, now)
                assert ladder.LEVEL_OF_ROLE[person.role] < state.level or not person.active
        assert state.level <= levels[-1] and state.level in levels
        assert ladder.LadderState.from_doc(state.to_doc()) == state


def test_a_store_without_a_supervisor_skips_that_rung_with_a_note():
    rungs = ladder.resolve_rungs(SEED, "GZ-TH-003")
    assert [r.present for r in rungs] == [True, False, True, True, True]
    assert rungs[REGIONAL].people == ("rm-south", "cs-001")  # both are told on that rung
    high = ladder.start(rungs, "high", T0)
    assert high.level == STORE_MANAGER and high.people == ("gz-th-mg",)
    assert [(n.kind, n.role) for n in high.notes] == [
        (ladder.NoteKind.SKIPPED, Role.SUPERVISOR), (ladder.NoteKind.NOTIFIED, Role.STORE_MANAGER)]
    low = ladder.start(rungs, "low", T0)
    assert low.level == STORE_STAFF and low.ack_due_at == T0 + timedelta(minutes=30)
    climbed, notes = ladder.climb(low, rungs, T0 + timedelta(minutes=30))
    assert climbed.level == STORE_MANAGER and climbed.ack_due_at == T0 + timedelta(minutes=30, hours=2)
    assert [n.kind for n in notes] == [ladder.NoteKind.SKIPPED, ladder.NoteKind.NOTIFIED]


def test_critical_starts_at_the_store_manager_and_the_top_waits_for_nobody():
    rungs = ladder.resolve_rungs(SEED, "SH-XH-001")
    state = ladder.start(rungs, "critical", T0)
    assert state.level == STORE_MANAGER and state.ack_due_at == T0 + timedelta(hours=2)
    state, _ = ladder.climb(state, rungs, T0 + timedelta(hours=2))
    assert state.level == REGIONAL and set(state.people) == {"rm-east", "cs-001"}
    state, notes = ladder.climb(state, rungs, T0 + timedelta(hours=6))
    assert state.level == GENERAL_MANAGER and ladder.next_at(state) is None
    assert notes[-1].kind is ladder.NoteKind.TOP_REACHED
    assert ladder.climb(state, rungs, T0 + timedelta(days=1)) == (state, [])


def test_only_the_current_rung_or_above_may_acknowledge():
    rungs = ladder.resolve_rungs(SEED, "SH-XH-001")
    state = ladder.start(rungs, "high", T0)
    assert state.level == SUPERVISOR
    with pytest.raises(ladder.AcknowledgeRefused):
        ladder.acknowledge(state, SEED.staff["sh-xh-s1"], T0)
    acknowledged = ladder.acknowledge(state, SEED.staff["sh-xh-mg"], T0 + timedelta(minutes=5))
    assert acknowledged.acknowledged_by == "sh-xh-mg"
    assert ladder.climb(acknowledged, rungs, T0 + timedelta(hours=3)) == (acknowledged, [])
    assert ladder.acknowledge(acknowledged, SEED.staff["gm-001"], T0 + timedelta(hours=1)) == acknowledged


def test_the_bottom_rung_is_the_case_owner_and_timeouts_come_from_the_configuration():
    rungs = ladder.resolve_rungs(SEED, "SH-XH-001", assignee_id="sh-xh-rv")
    assert rungs[STORE_STAFF].people == ("sh-xh-rv",)
    assert ladder.resolve_rungs(SEED, "SH-XH-001")[STORE_STAFF].people == ("sh-xh-s1", "sh-xh-rv")
    configured = ladder.timeouts(lambda key: {"LADDER_ACK_STORE_STAFF_SECONDS": "600"}.get(key, 3600))
    assert configured[STORE_STAFF] == timedelta(minutes=10) and configured[REGIONAL] == timedelta(hours=1)
    assert ladder.start(rungs, "medium", T0, configured).ack_due_at == T0 + timedelta(minutes=10)
    owned = ladder.start_on(rungs, ladder.LEVEL_OF_ROLE[Role.SUPERVISOR], T0)  # a supervisor took it
    assert owned.level == SUPERVISOR and owned.people == ("sh-xh-sv",)


def test_a_handover_puts_the_successor_in_the_previous_owners_place_and_keeps_the_deadline():
    rungs = ladder.resolve_rungs(SEED, "SH-XH-001", assignee_id="sh-xh-s1")
    state = ladder.start(rungs, Severity.LOW.value, T0)
    assert state.people == ("sh-xh-s1",)
    later = T0 + timedelta(minutes=5)
    moved = ladder.handed_over(state, "sh-xh-s1", "sh-xh-rv", later)
    assert moved.people == ("sh-xh-rv",) and moved.level == state.level
    assert (moved.ack_due_at, moved.notified_at) == (state.ack_due_at, state.notified_at)
    note = moved.notes[-1]
    assert (note.kind, note.people, note.detail) == (ladder.NoteKind.HANDED_OVER, ("sh-xh-rv",), "from sh-xh-s1")
    acknowledged = ladder.acknowledge(state, SEED.staff["sh-xh-s1"], later)
    assert ladder.handed_over(acknowledged, "sh-xh-s1", "sh-xh-rv", later).acknowledged  # taken on stays taken on
    # a case that climbed past its owner: the rung's people are not the owner's to pass on
    climbed, _ = ladder.climb(state, rungs, state.ack_due_at)
    assert ladder.handed_over(climbed, "sh-xh-s1", "sh-xh-rv", later) == climbed
    assert ladder.handed_over(state, "sh-xh-s1", "sh-xh-s1", later) == state
