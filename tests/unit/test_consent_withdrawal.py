"""A customer's withdrawal of consent reaches what notify still holds for them
(services/notify/policy.Withdrawal, flows.consent_withdrawn) over in-memory fakes:
which deliveries it stops, what it leaves alone, and that a repeat changes nothing;
and what notify hears of after it, though caused before it (each event has its own
queue), is ended suppressed as soon as it is made, also when the withdrawal is handled
while the message is being made (its read of the withdrawals comes after its insert).
followup's digests of a profile's handles are notify's own."""
import copy
from datetime import timedelta

import pytest

from closeloop_shared import events as ev
from closeloop_shared.contract import DeliveryStatus as S
from closeloop_shared.contacts import handle_digests as contact_keys
from services.notify import flows, kinds, policy
from services.notify.metrics import CHANNELS
from services.notify.policy import CONSENT_WITHDRAWN, Withdrawal
from tests.unit.fakes import Crash, FakeDeliveries
from services.notify.channels import ChannelError, Failure
from tests.unit.test_notify_flows import DAYTIME, NIGHT, NINE, World, handle, metric
from tests.unit.test_notify_templates import CUSTOMER, appointment, routed, submitted

MEMBER = "M-0001"
CONTACT = {**CUSTOMER, "member_id": MEMBER, "wechat_openid": "o-liu"}
KEYS = kinds.customer_keys(CONTACT)


class ConsentWorld(World):
    def __init__(self, now=NIGHT, **config):
        super().__init__(now, **config)

    def withdraw(self, at=None, member_id=MEMBER, keys=KEYS):
        event = ev.load(ev.CUSTOMER_CONSENT_WITHDRAWN, ev.new_event(ev.CUSTOMER_CONSENT_WITHDRAWN, {
            "member_id": member_id, "customer_keys": keys, "withdrawn_at": at or self.now})["payload"])
        return flows.consent_withdrawn(self.deliveries, event, self.now)

    def of(self, kind_prefix, audience="customer"):
        return [d for d in self.deliveries.docs.values()
                if d["kind"].startswith(kind_prefix) and d["audience"] == audience]

    def nothing_goes_out_in_the_morning(self):
        """Quiet hours over and the send timer run: nothing sent, nobody asked to phone instead."""
        self.now = NINE
        self.tick()
        return not any(self.sent(c) for c in self.channels) and not any(
            t == ev.NOTIFICATION_FAILED for t, _ in self.published)


def delivery(**fields):
    return {"audience": "customer", "member_id": MEMBER, "customer_keys": KEYS, "status": "deferred",
            "created_at": DAYTIME, "caused_at": DAYTIME, **fields}


WITHDRAWAL = Withdrawal(MEMBER, frozenset(KEYS), DAYTIME + timedelta(hours=1))


# -- the domain decision ----------------------------------------------------------------------

@pytest.mark.parametrize("status", ["queued", "deferred", "failed", "sending"])
def test_a_message_to_the_customer_not_sent_yet_is_stopped(status):
    assert WITHDRAWAL.stops(delivery(status=status))


@pytest.mark.parametrize("status", ["sent", "delivered", "abandoned", "suppressed"])
def test_what_went_or_ended_already_is_history(status):
    assert not WITHDRAWAL.stops(delivery(status=status))


def test_staff_told_about_the_customers_case_and_webhook_copies_are_not_touched():
    assert not WITHDRAWAL.stops(delivery(audience="staff", member_id=None, customer_keys=[]))
    assert not WITHDRAWAL.stops(delivery(audience="system", member_id=None, customer_keys=[]))


def test_the_customer_is_found_by_member_id_or_by_any_handle():
    assert WITHDRAWAL.stops(delivery(member_id=None))                           # before member ids were kept
    assert WITHDRAWAL.stops(delivery(member_id=None, customer_keys=[KEYS[1]]))  # the e-mail alone
    assert WITHDRAWAL.stops(delivery(customer_keys=[]))                         # a booking's other phone
    assert not WITHDRAWAL.stops(delivery(member_id="M-0002", customer_keys=kinds.customer_keys(
        {"phone": "+8613900000000"})))


def test_a_message_caused_after_the_withdrawal_is_an_answer_to_something_newer():
    later = WITHDRAWAL.withdrawn_at + timedelta(seconds=1)
    assert not WITHDRAWAL.stops(delivery(caused_at=later, created_at=later))
    assert WITHDRAWAL.stops(delivery(caused_at=WITHDRAWAL.withdrawn_at))


def test_a_message_is_judged_by_its_cause_not_by_when_notify_made_it():
    # the reminder fell due before the withdrawal, but notify got to its event after it
    late = WITHDRAWAL.withdrawn_at + timedelta(minutes=2)
    assert WITHDRAWAL.stops(delivery(caused_at=DAYTIME, created_at=late))
    assert not WITHDRAWAL.stops(delivery(caused_at=late, created_at=DAYTIME))


def test_a_delivery_recorded_before_causes_were_kept_is_judged_by_when_it_was_made():
    old = delivery(created_at=DAYTIME)
    del old["caused_at"]
    assert policy.caused_at(old) == DAYTIME and WITHDRAWAL.stops(old)
    assert not WITHDRAWAL.stops(dict(old, created_at=WITHDRAWAL.withdrawn_at + timedelta(seconds=1)))


def test_any_recorded_withdrawal_at_or_after_the_cause_covers_it():
    withdrawn_at = WITHDRAWAL.withdrawn_at
    earlier = withdrawn_at - timedelta(days=9)
    assert policy.withdrawn_since([withdrawn_at, earlier], earlier) == withdrawn_at  # the latest covering one
    assert policy.withdrawn_since([earlier, withdrawn_at], withdrawn_at) == withdrawn_at
    assert policy.withdrawn_since([withdrawn_at], withdrawn_at + timedelta(seconds=1)) is None
    assert policy.withdrawn_since([], withdrawn_at) is None


@pytest.mark.parametrize("rule", [r for r in kinds.RULES.values() if r.audience is kinds.Audience.CUSTOMER],
                         ids=lambda rule: rule.template)
def test_every_customer_message_says_which_event_field_tells_when_its_cause_happened(rule):
    assert rule.caused_at in ev.SCHEMAS[rule.event].fields
    assert ev.SCHEMAS[rule.event].fields[rule.caused_at].required


def test_a_customer_notification_carries_when_its_cause_happened_and_a_staff_one_does_not():
    reminded_at = DAYTIME - timedelta(minutes=3)
    reminder = kinds.notification(ev.APPOINTMENT_REMINDER_DUE, appointment(
        ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT), reminded_at=reminded_at))
    assert reminder.caused_at == reminded_at
    assert kinds.notification(ev.CASE_ROUTED, routed()).caused_at is None


def test_the_withdrawal_names_a_customer_by_the_digests_notify_files_them_under():
    profile = {"phone": "+8613812345678", "email": "Liu@Example.com", "wechat_openid": "o-liu"}
    assert contact_keys(profile) == kinds.customer_keys(profile)
    assert contact_keys({"phone": "+8613812345678", "email": None}) == kinds.customer_keys(
        {"phone": "+8613812345678"})
    assert contact_keys({"phone": None}) == []  # no handle: matched by member id only
    assert not any("+86" in key or "@" in key for key in contact_keys(profile))


# -- notify's use case ------------------------------------------------------------------------

def test_a_reminder_deferred_by_quiet_hours_is_never_sent_and_says_why():
    world = ConsentWorld(now=NIGHT)
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT)))
    (reminder,) = world.of("appointment_reminder")
    assert reminder["status"] == "deferred" and reminder["member_id"] == MEMBER

    assert world.withdraw() == 1
    (reminder,) = world.of("appointment_reminder")
    assert reminder["status"] == S.SUPPRESSED.value and reminder["reason"] == CONSENT_WITHDRAWN
    assert [h["status"] for h in reminder["status_history"]] == ["queued", "deferred", "suppressed"]
    assert world.nothing_goes_out_in_the_morning()


def test_sent_messages_and_staff_about_the_customers_case_stay_as_they_were():
    world = ConsentWorld(now=DAYTIME)
    world.event(ev.APPOINTMENT_CONFIRMED, appointment(ev.APPOINTMENT_CONFIRMED, customer=dict(CONTACT)))
    world.now = NIGHT
    world.event(ev.CASE_SUBMITTED, submitted(customer=dict(CONTACT)))     # acknowledgement: deferred
    world.event(ev.CASE_ROUTED, routed(severity="critical"))            # staff, urgent: sent at night
    (confirmation,) = world.of("appointment_confirmation")
    (assigned,) = world.of("assigned", audience="staff")
    before = copy.deepcopy((confirmation, assigned))

    assert world.withdraw() == 1
    (acknowledgement,) = world.of("acknowledgement")
    assert acknowledgement["status"] == "suppressed"
    assert (world.of("appointment_confirmation")[0], world.of("assigned", audience="staff")[0]) == before
    assert confirmation["status"] == "sent" and assigned["status"] == "sent"


def test_a_redelivered_withdrawal_changes_nothing():
    world = ConsentWorld(now=NIGHT)
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT)))
    assert world.withdraw() == 1
    after = copy.deepcopy(world.deliveries.docs)
    assert world.withdraw(at=world.now) == 0
    assert world.deliveries.docs == after


def test_an_acknowledgement_released_while_the_staff_alert_is_sent_is_ended_by_its_sender_not_sent():
    world = ConsentWorld(now=DAYTIME, NOTIFY_ACK_WAIT_SECONDS=20)
    world.event(ev.CASE_SUBMITTED, submitted(customer=dict(CONTACT)))  # the acknowledgement waits for case_routed
    world.now += timedelta(seconds=1)
    wecom, withdrawn = world.channels["wecom"], []
    send_alert = wecom.send

    def withdraw_while_sending(outgoing):  # the customer withdraws while the assignee's alert is being sent
        withdrawn.append(world.withdraw())
        return send_alert(outgoing)
    wecom.send = withdraw_while_sending
    handle(world, ev.CASE_ROUTED, routed(case_id=submitted()["case_id"]))
    assert withdrawn == [1] and len(world.sent("wecom")) == 1          # marked: its sender held it
    (acknowledgement,) = world.of("acknowledgement")
    assert acknowledgement["status"] == "suppressed" and acknowledgement["reason"] == CONSENT_WITHDRAWN
    assert not any(world.sent(c) for c in ("wechat", "sms", "email"))


def test_a_retry_waiting_is_stopped_and_a_message_after_the_withdrawal_goes():
    world = ConsentWorld(now=DAYTIME)
    for channel in world.channels.values():  # whichever carries it first is busy
        channel.failures.append(ChannelError(Failure.TRANSIENT, "http_503"))
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT)))
    (reminder,) = world.of("appointment_reminder")
    assert reminder["status"] == "failed"
    assert world.withdraw() == 1
    assert world.of("appointment_reminder")[0]["status"] == "suppressed"

    world.now = DAYTIME + timedelta(minutes=5)          # they complain afterwards: that is answered
    for channel in world.channels.values():
        channel.failures.clear()
    world.event(ev.CASE_SUBMITTED, submitted(customer=dict(CONTACT), submitted_at=world.now))
    assert world.of("acknowledgement")[0]["status"] == "sent"


# -- a withdrawal heard before the event that causes a message ----------------------------------

def suppressed_reminders():
    return sum(metric("closeloop_notifications_total", channel=channel, kind="appointment_reminder",
                      outcome="suppressed") for channel in CHANNELS)


def test_a_reminder_due_before_the_withdrawal_but_heard_after_it_is_suppressed_when_made_and_never_sent():
    world = ConsentWorld(now=DAYTIME)
    due = DAYTIME - timedelta(seconds=5)        # followup: the reminder fell due, then the customer withdrew
    suppressed = suppressed_reminders()
    assert world.withdraw(at=DAYTIME - timedelta(seconds=1)) == 0  # notify hears of the withdrawal first
    world.now = DAYTIME + timedelta(seconds=3)
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT),
                                                         reminded_at=due))
    (reminder,) = world.of("appointment_reminder")
    assert reminder["status"] == S.SUPPRESSED.value and reminder["reason"] == CONSENT_WITHDRAWN
    assert reminder["caused_at"] == due and reminder["created_at"] == world.now
    assert [h["status"] for h in reminder["status_history"]] == ["queued", "suppressed"]
    assert reminder["attempt_log"] == [] and not reminder.get("lease_owner")
    assert not any(count for count in world.deliveries.counts.values())  # its quota counts given back
    assert suppressed_reminders() == suppressed + 1
    assert world.nothing_goes_out_in_the_morning()


def test_a_confirmation_heard_after_the_withdrawal_finds_it_by_a_handle_or_the_member_id_alone():
    world = ConsentWorld(now=DAYTIME)
    world.withdraw(at=DAYTIME, member_id="M-OTHER", keys=[KEYS[1]])  # filed under the e-mail only
    world.event(ev.APPOINTMENT_CONFIRMED, appointment(ev.APPOINTMENT_CONFIRMED, customer=dict(CONTACT),
                                                      confirmed_at=DAYTIME - timedelta(seconds=1)))
    world.withdraw(at=DAYTIME, keys=[])                                # filed under the member id only
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT),
                                                         reminded_at=DAYTIME))
    assert {d["status"] for d in world.of("appointment_")} == {S.SUPPRESSED.value}
    assert not any(world.sent(c) for c in world.channels)


def test_an_acknowledgement_of_an_earlier_complaint_is_not_left_waiting_nor_sent_nor_phoned():
    world = ConsentWorld(now=DAYTIME, NOTIFY_ACK_WAIT_SECONDS=20)
    world.withdraw(at=DAYTIME)
    world.event(ev.CASE_SUBMITTED, submitted(customer=dict(CONTACT, phone=None, email=None, wechat_openid=None),
                                             submitted_at=DAYTIME - timedelta(minutes=1)))  # reaches nobody
    world.event(ev.CASE_SUBMITTED, submitted(case_id="c43", customer=dict(CONTACT),
                                             submitted_at=DAYTIME - timedelta(minutes=1)))
    acknowledgements = world.of("acknowledgement")
    assert len(acknowledgements) == 2
    assert all(d["status"] == "suppressed" and d["reason"] == CONSENT_WITHDRAWN and d["waiting_for"] is None
               and d["context"] is None for d in acknowledgements)  # nothing left for case_routed to release
    assert not any(t == ev.NOTIFICATION_FAILED for t, _ in world.published)


def test_a_message_caused_after_the_withdrawal_goes_while_one_caused_before_it_does_not():
    world = ConsentWorld(now=DAYTIME)
    world.withdraw(at=DAYTIME)
    world.now = DAYTIME + timedelta(minutes=5)
    world.event(ev.CASE_SUBMITTED, submitted(case_id="c-new", customer=dict(CONTACT), submitted_at=world.now))
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT),
                                                         reminded_at=DAYTIME - timedelta(minutes=1)))
    assert world.of("acknowledgement")[0]["status"] == "sent"
    assert world.of("appointment_reminder")[0]["status"] == "suppressed"
    assert sum(len(world.sent(c)) for c in world.channels) == 1


def test_staff_told_about_a_withdrawn_customers_case_are_told_as_before():
    world = ConsentWorld(now=DAYTIME)
    world.withdraw(at=DAYTIME)
    world.event(ev.CASE_ROUTED, routed(severity="critical"))
    (assigned,) = world.of("assigned", audience="staff")
    assert assigned["status"] == "sent" and assigned["caused_at"] is None


def test_a_redelivered_withdrawal_keeps_one_record_per_key_with_the_latest_time():
    world = ConsentWorld(now=DAYTIME)
    world.withdraw(at=DAYTIME)
    world.withdraw(at=DAYTIME)
    world.withdraw(at=DAYTIME - timedelta(hours=1))  # an older one redelivered late changes nothing
    assert world.deliveries.withdrawals == {f"member|{MEMBER}": DAYTIME, **{f"handle|{k}": DAYTIME for k in KEYS}}


def test_a_delivery_made_after_the_withdrawal_time_but_caused_before_it_is_stopped_when_the_withdrawal_arrives():
    world = ConsentWorld(now=NIGHT)
    withdrawn_at = NIGHT - timedelta(minutes=1)  # followup's time; notify hears of it only now
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT),
                                                         reminded_at=withdrawn_at - timedelta(seconds=1)))
    assert world.of("appointment_reminder")[0]["status"] == "deferred"  # quiet hours
    assert world.withdraw(at=withdrawn_at) == 1
    assert world.of("appointment_reminder")[0]["status"] == "suppressed"


def test_a_held_delivery_recorded_before_causes_were_kept_is_still_stopped():
    world = ConsentWorld(now=NIGHT)
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT)))
    (stored,) = world.of("appointment_reminder")
    del world.deliveries.docs[stored["_id"]]["caused_at"]  # as an older release recorded it
    assert world.withdraw() == 1
    assert world.of("appointment_reminder")[0]["status"] == "suppressed"



# -- a withdrawal handled while the message is being made (another replica, its own queue) -------

class WithdrawnAroundTheInsert(FakeDeliveries):
    """The customer's withdrawal, recorded and its held deliveries scanned in full by
    another replica (flows.consent_withdrawn), lands while a message to them is being
    made: `before` the insert (after the quota round trip: its scan finds nothing to
    stop) or `after` it (its scan finds the new delivery). `reads` logs the order of
    take, create and withdrawals_of."""

    def __init__(self, now, withdraw, when="before"):
        super().__init__(now)
        self.withdraw, self.when, self.reads, self.scans = withdraw, when, [], []

    def take(self, *args, **kwargs):
        self.reads.append("take")
        return super().take(*args, **kwargs)

    def withdrawals_of(self, member_id, customer_keys):
        self.reads.append("withdrawals_of")
        return super().withdrawals_of(member_id, customer_keys)

    def create(self, document, now, outcome=None, start=None):
        self.reads.append("create")
        customer = document["audience"] == "customer" and not self.scans
        if customer and self.when == "before":
            self.scans.append(self.withdraw())
        created = super().create(document, now, outcome, start)
        if customer and self.when == "after":
            self.scans.append(self.withdraw())
        return created


def racing_world(now, when="before", **config):
    world = ConsentWorld(now=now, **config)
    world.deliveries = WithdrawnAroundTheInsert(lambda: world.now, lambda: world.withdraw(at=world.now), when)
    return world


def reminder_now(world):
    world.event(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE, customer=dict(CONTACT),
                                                         reminded_at=world.now - timedelta(seconds=1)))
    (reminder,) = world.of("appointment_reminder")
    return reminder


def test_a_reminder_to_send_at_once_whose_customer_withdraws_before_its_insert_is_ended_and_never_sent():
    world = racing_world(DAYTIME)
    suppressed = suppressed_reminders()
    reminder = reminder_now(world)
    assert world.deliveries.scans == [0]                # the scan ran before the insert: nothing to stop
    assert reminder["status"] == S.SUPPRESSED.value and reminder["reason"] == CONSENT_WITHDRAWN
    assert [h["status"] for h in reminder["status_history"]] == ["queued", "suppressed"]
    assert reminder["attempt_log"] == [] and reminder["attempts"] == 0 and not reminder.get("lease_owner")
    assert world.deliveries.counts and not any(world.deliveries.counts.values())  # day and SMS minute given back
    assert suppressed_reminders() == suppressed + 1
    assert not any(world.sent(c) for c in world.channels)
    assert not any(t == ev.NOTIFICATION_FAILED for t, _ in world.published)


def test_the_withdrawals_are_read_once_after_the_insert_and_not_for_staff():
    world = racing_world(DAYTIME)
    reminder_now(world)
    assert world.deliveries.reads == ["take", "create", "withdrawals_of"]
    world.deliveries.reads.clear()
    world.event(ev.CASE_ROUTED, routed(severity="critical"))
    assert "withdrawals_of" not in world.deliveries.reads


def test_a_reminder_deferred_by_quiet_hours_whose_customer_withdraws_before_its_insert_is_ended():
    world = racing_world(NIGHT)
    reminder = reminder_now(world)
    assert reminder["status"] == S.SUPPRESSED.value and reminder["reason"] == CONSENT_WITHDRAWN
    assert [h["status"] for h in reminder["status_history"]] == ["queued", "deferred", "suppressed"]
    assert not any(world.deliveries.counts.values()) and not reminder.get("lease_owner")
    world.now = NINE
    world.tick()
    assert not any(world.sent(c) for c in world.channels)


class SenderTakesItFirst(WithdrawnAroundTheInsert):
    """A sender (its time come, another replica) claims the just-deferred message before
    the read after its insert can: that read marks it for the sender to end."""

    def claim_held(self, delivery, now):
        return None


def test_a_deferred_message_a_sender_holds_when_the_withdrawal_is_read_is_marked_and_ended_by_its_sender():
    world = ConsentWorld(now=NIGHT)
    world.deliveries = SenderTakesItFirst(lambda: world.now, lambda: world.withdraw(at=world.now), "before")
    reminder = reminder_now(world)
    assert reminder["status"] == S.DEFERRED.value and reminder["consent_withdrawn_at"] == NIGHT
    world.now = NINE
    world.tick()  # the sender's attempt reads the mark
    assert world.of("appointment_reminder")[0]["status"] == S.SUPPRESSED.value
    assert not any(world.sent(c) for c in world.channels)


def test_an_acknowledgement_waiting_for_its_facts_whose_customer_withdraws_before_its_insert_is_ended():
    world = racing_world(DAYTIME, NOTIFY_ACK_WAIT_SECONDS=20)
    world.event(ev.CASE_SUBMITTED, submitted(customer=dict(CONTACT), submitted_at=DAYTIME - timedelta(seconds=1)))
    (acknowledgement,) = world.of("acknowledgement")
    assert acknowledgement["status"] == S.SUPPRESSED.value and acknowledgement["waiting_for"] is None
    assert acknowledgement["context"] is None
    handle(world, ev.CASE_ROUTED, routed(case_id=submitted()["case_id"]))  # its facts: nothing to release
    assert world.of("acknowledgement")[0]["status"] == S.SUPPRESSED.value
    assert not any(world.sent(c) for c in ("wechat", "sms", "email"))


def test_a_message_reaching_nobody_whose_customer_withdraws_before_its_insert_is_suppressed_not_abandoned():
    world = racing_world(DAYTIME)
    world.event(ev.CASE_SUBMITTED, submitted(customer=dict(CONTACT, phone=None, email=None, wechat_openid=None),
                                             submitted_at=DAYTIME - timedelta(seconds=1)))
    (acknowledgement,) = world.of("acknowledgement")
    assert acknowledgement["status"] == S.SUPPRESSED.value and acknowledgement["reason"] == CONSENT_WITHDRAWN
    assert not any(t == ev.NOTIFICATION_FAILED for t, _ in world.published)  # nobody phones them instead


@pytest.mark.parametrize("now", [DAYTIME, NIGHT], ids=["sent at once: the scan marks it", "deferred: the scan ends it"])
def test_a_withdrawal_whose_scan_finds_the_new_message_and_the_read_after_its_insert_end_it_once(now):
    world = racing_world(now, when="after")
    suppressed = suppressed_reminders()
    reminder = reminder_now(world)
    assert world.deliveries.scans == [1]
    assert reminder["status"] == S.SUPPRESSED.value and reminder["reason"] == CONSENT_WITHDRAWN
    assert [h["status"] for h in reminder["status_history"]].count(S.SUPPRESSED.value) == 1
    assert suppressed_reminders() == suppressed + 1
    assert not any(world.deliveries.counts.values())
    assert not any(world.sent(c) for c in world.channels)


def test_a_redelivered_event_marks_the_message_its_first_handling_died_before_checking():
    world = racing_world(DAYTIME)
    world.deliveries.withdrawals_of = lambda *keys: (_ for _ in ()).throw(Crash("died after the insert"))
    with pytest.raises(Crash):
        reminder_now(world)
    assert world.of("appointment_reminder")[0]["status"] == "sending"  # its attempt begun by the insert
    del world.deliveries.withdrawals_of
    reminder_now(world)                                                 # the event redelivered
    world.now += timedelta(seconds=FakeDeliveries.LEASE + 1)           # the dead sender's lease runs out
    flows.take_over_stalled(world.deliveries, world.channels, world.settings, world.clock, world.publish, 10)
    (reminder,) = world.of("appointment_reminder")
    assert reminder["status"] == S.SUPPRESSED.value and reminder["reason"] == CONSENT_WITHDRAWN
    assert not any(world.sent(c) for c in world.channels)
