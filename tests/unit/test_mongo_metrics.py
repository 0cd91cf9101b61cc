"""Round trips are counted by command and collection (closeloop_shared/mongo_metrics.py)."""
from types import SimpleNamespace

from closeloop_shared.mongo_metrics import COMMANDS, CommandCounter, collection_of


def test_the_collection_is_named_by_the_command_or_by_getmore():
    assert collection_of("find", {"find": "cases", "filter": {}}) == "cases"
    assert collection_of("findAndModify", {"findAndModify": "deliveries"}) == "deliveries"
    assert collection_of("getMore", {"getMore": 123, "collection": "case_facts"}) == "case_facts"
    assert collection_of("commitTransaction", {"commitTransaction": 1}) == ""
    assert collection_of("ping", {"ping": 1}) == ""


def count(command, collection, outcome):
    return COMMANDS.labels(command, collection, outcome)._value.get()


def test_a_command_counts_once_under_its_collection_whatever_its_outcome():
    counter = CommandCounter()
    before = count("insert", "unit_test_things", "ok"), count("update", "unit_test_things", "failed")
    started = [SimpleNamespace(connection_id=("h", 1), request_id=1, command_name="insert",
                               command={"insert": "unit_test_things"}),
               SimpleNamespace(connection_id=("h", 1), request_id=2, command_name="update",
                               command={"update": "unit_test_things"})]
    for event in started:
        counter.started(event)
    counter.succeeded(started[0])
    counter.failed(started[1])
    assert (count("insert", "unit_test_things", "ok"), count("update", "unit_test_things", "failed")) == (
        before[0] + 1, before[1] + 1)
    assert counter._collections == {}  # nothing kept once a command has ended
