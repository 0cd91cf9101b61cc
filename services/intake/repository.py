from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from closeloop_shared.mongo import insert_new
from closeloop_shared.outbox import Outbox


class FeedbackRepository:
    """intake's own collections: `cases` (every accepted submission) and `counters`."""

    def __init__(self, db):
        self.cases = db["cases"]
        self.counters = db["counters"]
        self.outbox = Outbox(self.cases)

    @staticmethod
    def ensure_indexes(db):
        db["cases"].create_index([("dedupe_key", ASCENDING)], unique=True)
        db["cases"].create_index([("case_number", ASCENDING)], unique=True)
        Outbox.ensure_indexes(db["cases"])

    def find_by_dedupe_key(self, key):
        return self.cases.find_one({"dedupe_key": key})

    def next_sequence(self, name, tries=3):
        """The next number of sequence `name` (created at 1). Two replicas drawing a new
        day's first number at once race to create its counter: the loser gets a duplicate
        key (MongoDB) or no document (seen on the stand-in), and simply draws again."""
        for _ in range(tries):
            try:
                counter = self.counters.find_one_and_update(
                    {"_id": name}, {"$inc": {"value": 1}}, upsert=True,
                    return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                continue
            if counter is not None:
                return counter["value"]
        raise RuntimeError(f"no number drawn from sequence {name} in {tries} tries")

    def insert(self, case):
        """The stored case, and whether this call created it (False: a concurrent
        submission with the same dedupe key won)."""
        if insert_new(self.cases, case):
            return case, True
        return self.find_by_dedupe_key(case["dedupe_key"]), False

    def get(self, case_id):
        return self.cases.find_one({"_id": case_id})
