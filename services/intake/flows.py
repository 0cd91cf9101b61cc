"""Intake's use case as a plain function over a repository and a publish callable."""
from services.intake import cases


def accept(repository, publish, submission, store, via, now):
    """Store the submission as a case (once per dedupe key) and publish case_submitted.
    Returns (case, created)."""
    key = cases.dedupe_key(submission)
    if key:
        existing = repository.find_by_dedupe_key(key)
        if existing:
            return existing, False
    number = cases.case_number(now, repository.next_sequence(cases.sequence_name(now)))
    case, created = repository.insert(cases.new_case(submission, store, number, now, via, key))
    if created:
        repository.outbox.flush(case["_id"], case["outbox"], publish)
    return case, created
