"""Who read which personal data, when (PIPL: health and contact data are shown only to
those who need them, and every such read is on record). A service that shows personal
data records each read that showed it unmasked, in its own `personal_data_reads`
collection; an admin lists them at GET /v1/audit/personal-data-reads of that service."""
from pymongo import DESCENDING

from closeloop_shared.access import sees_personal_data
from closeloop_shared.clock import utcnow


class PersonalDataReads:
    def __init__(self, db):
        self.reads = db["personal_data_reads"]

    @staticmethod
    def ensure_indexes(db):
        db["personal_data_reads"].create_index([("at", DESCENDING)])

    def record(self, principal, kind, object_ids):
        """Record that `principal` saw the personal data of these objects, if it did."""
        if object_ids and sees_personal_data(principal):
            self.reads.insert_one({"at": utcnow(), "who": principal.subject,
                                   "role": principal.role.value if principal.role else None,
                                   "kind": kind, "ids": list(object_ids)})

    def recent(self, limit):
        return list(self.reads.find({}, {"_id": 0}).sort("at", DESCENDING).limit(limit))
