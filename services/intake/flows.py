"""Intake's use case as a plain function over a repository and a publish callable."""
from services.intake import cases


class StoreRefused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def store_for(organisation, scope, store_id):
    """The store feedback is for, if the submitter's scope reaches it and it is open.
    A store out of scope is as unknown as a missing one (no existence leak)."""
    store = organisation.store(store_id)
    if store is None or not scope.covers(store_id):
        raise StoreRefused("unknown_store", f"unknown store {store_id!r}")
    if not store.is_open:
        raise StoreRefused("store_closed", f"store {store_id!r} is closed and takes no feedback")
    return store


def accept(repository, publish, submission, store, via, submitted_by, now):
    """Store the submission as a case (once per client and external reference) and
    publish case_submitted. Returns (case, created).
    A repeated submission is told apart by the unique dedupe_key index when its insert
    loses (repository.insert), not by a read before every insert: a repeat is rare, and
    the number it drew stays unused (case numbers are unique and rising, not gapless)."""
    key = cases.dedupe_key(submission, submitted_by)
    number = cases.case_number(now, repository.next_sequence(cases.sequence_name(now)))
    case, created = repository.insert(cases.new_case(submission, store, number, now, via, key, submitted_by))
    if created:
        repository.outbox.flush(case["_id"], case["outbox"], publish)
    return case, created
