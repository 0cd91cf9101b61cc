"""In-memory stand-ins for repositories, for unit tests of the flows."""
import copy


class FakeCases:
    """The CaseRepository contract in memory, including the version check."""

    def __init__(self):
        self.docs, self.lose_next_updates = {}, 0

    def get(self, case_id):
        return copy.deepcopy(self.docs.get(case_id))

    def insert(self, case):
        if case["_id"] in self.docs:
            return False
        self.docs[case["_id"]] = copy.deepcopy(case)
        return True

    def update(self, case, changes, entries, events, now):
        stored = self.docs[case["_id"]]
        if self.lose_next_updates:
            self.lose_next_updates -= 1
            stored["version"] += 1  # someone else wrote first
            return None
        if stored["version"] != case["version"]:
            return None
        stored.update(copy.deepcopy(changes), updated_at=now, version=stored["version"] + 1)
        stored["timeline"] += entries
        stored["outbox"] = stored.get("outbox", []) + events
        return self.get(case["_id"])

    def due(self, now, limit):
        due = [d for d in self.docs.values() if d.get("next_check_at") and d["next_check_at"] <= now]
        return copy.deepcopy(sorted(due, key=lambda d: d["next_check_at"])[:limit])
