"""A new day's first case number drawn by two replicas at once: the loser of the race to
create the counter draws again (services/intake/repository.py)."""
import pytest
from pymongo.errors import DuplicateKeyError

from services.intake.repository import FeedbackRepository


class RacedCounters:
    """A counters collection whose first answers are those of a lost creation race."""

    def __init__(self, *lost):
        self.lost, self.value = list(lost), 0

    def find_one_and_update(self, query, update, **options):
        if self.lost:
            lost = self.lost.pop(0)
            if lost == "duplicate":
                raise DuplicateKeyError("E11000 duplicate key error")
            return None
        self.value += update["$inc"]["value"]
        return {"_id": query["_id"], "value": self.value}


def repository(counters):
    found = object.__new__(FeedbackRepository)  # only its counters are used
    found.counters = counters
    return found


@pytest.mark.parametrize("lost", [("nothing",), ("duplicate",), ("nothing", "duplicate")])
def test_a_lost_creation_race_draws_again(lost):
    assert repository(RacedCounters(*lost)).next_sequence("case:20261126") == 1


def test_a_counter_that_never_answers_fails_loudly_rather_than_numbering_nothing():
    with pytest.raises(RuntimeError):
        repository(RacedCounters("nothing", "nothing", "nothing")).next_sequence("case:20261126")
