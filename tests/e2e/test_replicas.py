"""Two replicas of every back-end service, run as processes, share the work and do none
of it twice (issue 13, "Scale out by the book").

Every replica consumes the same queues (the same service name), so RabbitMQ hands each
message to one replica. Timers fire in every replica and claim due work atomically
(closeloop_shared.leases, closeloop_shared.due). What is checked:
- the outcome: one case per message in intake, routed once, one acknowledgement per case
  in notify (and one e-mail), one revisit per resolved case in followup, every case and
  resolution counted once in reporting;
- the work: each handler ran exactly once per message or event, summed over the two
  replicas (closeloop_entrypoint_calls_total on each replica's /metrics), and each
  replica ran some of it.
"""
import re
import time
import uuid
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from deploy.local import SERVICES
from tests.fixtures import wait_for

pytestmark = pytest.mark.e2e
SHANGHAI = ZoneInfo("Asia/Shanghai")
MESSAGES = 40
RESOLVED = 10  # of the cases: each gives followup a case_resolved and reporting a resolution
STORES = ("SH-XH-001", "HZ-XH-002")
# The handlers one feedback message sets off, per service: (entrypoint, kind) -> calls per case.
HANDLERS_PER_CASE = {
    "intake": {("on_feedback_submitted", "consumer"): 1},
    "routing": {("on_case_submitted", "event"): 1},
    "notify": {("on_case_submitted", "event"): 1, ("on_case_routed", "event"): 1},
    "reporting": {("on_case_submitted", "event"): 1, ("on_case_routed", "event"): 1},
}
HANDLERS_PER_RESOLUTION = {
    "followup": {("on_case_resolved", "event"): 1},
    "reporting": {("on_case_resolved", "event"): 1},
}
SAMPLE = re.compile(r'^closeloop_entrypoint_calls_total\{([^}]*)\} ([0-9.e+]+)$', re.MULTILINE)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def calls_by_entrypoint(metrics_text, service):
    """{(entrypoint, kind): calls} of one replica's closeloop_entrypoint_calls_total."""
    calls = {}
    for labels, value in SAMPLE.findall(metrics_text):
        label = dict(LABEL.findall(labels))
        if label["service"] == service:
            calls[(label["entrypoint"], label["kind"])] = float(value)
    return calls


def feedback(n):
    return {"store_id": STORES[n % len(STORES)], "channel": "hotline",
            # a customer each: notify's daily quota is per customer address
            "customer": {"name": "刘女士", "phone": f"1381234{n:04d}",
                         "email": f"replica-{n}-{uuid.uuid4().hex[:6]}@example.com"},
            "content": f"预约好的时间到店后说没有记录,让我白跑一趟 #{n}",
            "occurred_at": datetime.now(SHANGHAI).replace(microsecond=0).isoformat()}


def routing_cases(system):
    """{case_id: case} of every case routing has, with its timeline (the newest entries)."""
    listed = system.get("routing", "/v1/cases", params={"limit": 200})
    return {case["case_id"]: case for case in listed.json()["cases"]} if listed.status_code == 200 else {}


def test_two_replicas_of_every_service_share_the_work_and_do_nothing_twice(
        stack, smtp_sink, amqp_bus, mongo_client, mongo_prefix):
    started = time.monotonic()
    system = stack(replicas={name: 2 for name in SERVICES})
    up = time.monotonic()
    # No external reference: intake cannot recognise a message it is given twice, so a
    # double delivery would show as a second case.
    sent = [feedback(n) for n in range(MESSAGES)]
    customers = Counter(body["customer"]["email"] for body in sent)
    for body in sent:
        amqp_bus.publish_feedback(body)

    intake_cases = mongo_client[f"{mongo_prefix}_intake"]["cases"]
    wait_for(lambda: intake_cases.count_documents({}) >= MESSAGES, timeout=30, what="every case in intake")
    taken_in = time.monotonic()
    cases = list(intake_cases.find({}, {"customer.email": 1}))
    assert Counter(case["customer"]["email"] for case in cases) == customers, "one case per message"
    case_ids = {case["_id"] for case in cases}
    wait_for(lambda: set(routing_cases(system)) >= case_ids, timeout=30, what="every case routed")

    def acknowledged():  # one read of the mail sink per look: it parses every message
        mailed = Counter(message["To"] for message in smtp_sink.messages())
        return mailed if all(mailed[customer] for customer in customers) else None
    wait_for(acknowledged, timeout=30, interval=0.5, what="every customer acknowledged")
    routed_and_acknowledged = time.monotonic()

    resolved_ids = sorted(case_ids)[:RESOLVED]
    for case_id in resolved_ids:
        answer = system.post("routing", f"/v1/cases/{case_id}/resolve", {"note": "已致电致歉"})
        assert answer.status_code == 200, answer.text

    def revisits(case_id):
        found = system.get("followup", "/v1/revisits", params={"case_id": case_id})
        return found.json()["revisits"] if found.status_code == 200 else None
    for case_id in resolved_ids:
        wait_for(lambda: revisits(case_id), timeout=30, what=f"the revisit of {case_id}")

    def counted():
        summary = system.get("reporting", "/v1/reports/summary").json()
        return summary if summary["cases"] >= MESSAGES and \
            summary["by_status"].get("resolved", 0) >= RESOLVED else None
    wait_for(counted, timeout=30, what="reporting counting every case")
    settled = time.monotonic()
    time.sleep(2)  # time for anything done twice to show

    # the outcome: each case once everywhere
    assert intake_cases.count_documents({}) == MESSAGES
    routed = routing_cases(system)
    assert set(routed) == case_ids
    for case_id, case in routed.items():
        assert [entry["action"] for entry in case["timeline"]].count("routed") == 1, case_id
    deliveries = mongo_client[f"{mongo_prefix}_notify"]["deliveries"]
    acknowledgements = Counter(d["case_id"] for d in deliveries.find({"kind": "acknowledgement"}, {"case_id": 1}))
    assert acknowledgements == Counter(case_ids), "one acknowledgement per case"
    mailed = Counter(message["To"] for message in smtp_sink.messages())
    assert {customer: mailed[customer] for customer in customers} == customers, "one e-mail per customer"
    for case_id in resolved_ids:
        assert len(revisits(case_id)) == 1, case_id
    summary = system.get("reporting", "/v1/reports/summary").json()
    assert summary["cases"] == MESSAGES and summary["by_channel"] == {"hotline": MESSAGES}
    assert summary["by_status"].get("resolved") == RESOLVED

    # the work: exactly once in all, and each replica did some of it
    for service in SERVICES:
        expected = Counter()
        for handler, times in HANDLERS_PER_CASE.get(service, {}).items():
            expected[handler] += times * MESSAGES
        for handler, times in HANDLERS_PER_RESOLUTION.get(service, {}).items():
            expected[handler] += times * RESOLVED
        per_replica = [calls_by_entrypoint(requests.get(url + "/metrics", timeout=10).text, service)
                       for url in system.urls[service]]
        assert len(per_replica) == 2
        for handler, total in expected.items():
            done = [calls.get(handler, 0) for calls in per_replica]
            assert sum(done) == total, f"{service}.{handler[0]}: {done} calls, {total} expected"
            assert all(done), f"{service}.{handler[0]}: one replica did all of it ({done})"
    print(f"10 replicas up in {up - started:.1f} s; {MESSAGES} cases in intake after {taken_in - up:.1f} s, "
          f"routed and acknowledged after {routed_and_acknowledged - up:.1f} s; {RESOLVED} resolved and "
          f"everything counted after {settled - up:.1f} s; checks {time.monotonic() - settled:.1f} s")
