"""closeloop_shared/mongo.py's index plans: what each repository's ensure_indexes would
create, read without a server, and a fingerprint that changes only with the plan."""
import pytest
from prometheus_client import REGISTRY

from closeloop_shared.mongo import UnplannableIndexes, fingerprint, index_plan
from services.intake.repository import FeedbackRepository
from services.notify.repository import DeliveryRepository
from services.reporting.repository import FactsRepository


def test_a_plan_lists_each_index_with_its_collection_keys_and_options():
    plan = index_plan(FactsRepository.ensure_indexes, "closeloop_reporting")
    assert {"collection": "case_facts", "keys": [("submitted_at", 1), ("store_id", 1)], "options": {}} in plan
    assert {entry["collection"] for entry in plan} == {"case_facts", "reporting_events", "report_buckets",
                                                      "weekly_digests"}


def test_the_fingerprint_is_stable_and_changes_with_the_plan():
    plan = index_plan(DeliveryRepository.ensure_indexes, "closeloop_notify")
    assert fingerprint(plan) == fingerprint(index_plan(DeliveryRepository.ensure_indexes, "closeloop_notify"))
    assert fingerprint(plan) != fingerprint(plan[:-1])
    assert fingerprint(plan) != fingerprint([dict(plan[0], options={"sparse": True}), *plan[1:]])


def test_planning_still_creates_the_outbox_series_every_start():
    index_plan(FeedbackRepository.ensure_indexes, "test_intake")
    assert REGISTRY.get_sample_value("closeloop_outbox_backlog_messages", {
        "service": "intake", "collection": "cases"}) is not None


def test_an_ensure_indexes_that_does_more_than_create_indexes_cannot_be_planned():
    with pytest.raises(UnplannableIndexes):
        index_plan(lambda db: db["things"].find_one({}), "x")
