from prometheus_client.core import GaugeMetricFamily
from pymongo import ASCENDING

from closeloop_shared.events import SEVERITIES
from services.reporting.kpis import OPEN_STATUSES


class FactsRepository:
    """reporting's `case_facts`: one row per case, built only from events."""

    def __init__(self, db):
        self.facts = db["case_facts"]

    @staticmethod
    def ensure_indexes(db):
        facts = db["case_facts"]
        facts.create_index([("submitted_at", ASCENDING), ("store_id", ASCENDING)])
        facts.create_index([("status", ASCENDING), ("severity", ASCENDING)])

    def apply(self, case_id, change):
        """read_model.apply, as atomic MongoDB updates."""
        update = {"$setOnInsert": {"case_id": case_id}}
        if change.fields:
            update["$set"] = change.fields
        if change.maxima:
            update["$max"] = change.maxima
        added = {name: item for name, item in (("revisits", change.revisit), ("corrections", change.correction))
                 if item}
        if added:
            update["$addToSet"] = added
        self.facts.update_one({"_id": case_id}, update, upsert=True)
        for guarded in change.guarded:
            self.facts.update_one(
                # "not after" also matches a missing guard; a top-level $or would make
                # the test stand-in scan the whole collection
                {"_id": case_id, guarded.guard: {"$not": {"$gt": guarded.value}}},
                {"$set": guarded.fields})

    def rows(self, start, end, stores=None):
        """The rows of cases submitted in [start, end), of `stores` (None: all)."""
        query = {"submitted_at": {"$gte": start, "$lt": end}}
        if stores is not None:
            query["store_id"] = {"$in": sorted(stores)}
        return self.facts.find(query, {"_id": 0})

    def open_by_severity(self):
        counts = {s: 0 for s in SEVERITIES}
        for row in self.facts.aggregate([
                {"$match": {"status": {"$in": list(OPEN_STATUSES)}}},
                {"$group": {"_id": "$severity", "n": {"$sum": 1}}}]):
            if row["_id"] in counts:
                counts[row["_id"]] = row["n"]
        return counts


class OpenCasesCollector:
    """closeloop_open_cases{severity}, read from the read model at scrape time so every
    replica reports the same truth."""

    def __init__(self, repository):
        self.repository = repository

    def collect(self):
        gauge = GaugeMetricFamily("closeloop_open_cases", "Cases not yet resolved, by severity",
                                  labels=["severity"])
        for severity, count in self.repository.open_by_severity().items():
            gauge.add_metric([severity], count)
        yield gauge
