"""The triage model against its corpus: trains on the training part and measures both
held-out parts, never used for training or tuning: v1 (corpus.jsonl, split "test":
every fifth complaint of each category among the first 1490 as written) and v2
(heldout_v2.jsonl: 171 complaints written later, before any model output on them).

The issue's targets are asserted (a regression fails CI) on the whole held-out part and
on each of its two sets, except critical precision on v1 alone (7 of 8), which a strict
xfail pins until it is met."""
import json

import pytest

from services.routing import classification
from services.routing.triage import training

TARGET = {"accuracy": 0.90, "macro_f1": 0.85, "harm_recall": 1.0, "critical_precision": 0.90}
NOT_MET = {("v1", "critical_precision")}


@pytest.fixture(scope="module")
def corpus():
    return training.read_corpus()


@pytest.fixture(scope="module")
def held_out(corpus):
    """{part: report} of a model trained here, from the training part only."""
    triage = classification.from_artefact(training.fit(training.split(corpus, "train")))
    parts = training.held_out_parts()
    # the whole held-out part: both sets, neither ever trained or tuned on
    parts["all"] = [record for records in parts.values() for record in records]
    return {part: training.evaluate(triage, records) for part, records in parts.items()}


def _labelled(record, splits):
    assert record["split"] in splits and record["text"].strip()
    assert record["severity"] in ("low", "medium", "high", "critical")
    assert isinstance(record["harm"], bool)
    if record["harm"]:
        assert record["severity"] in ("high", "critical")


def test_the_corpus_is_large_labelled_and_split(corpus):
    assert len(corpus) >= 600
    assert len({r["id"] for r in corpus}) == len(corpus)
    model_categories = {c for c in classification.load().categories.labels}
    for record in corpus:
        assert record["category"] in model_categories
        if record.get("source") == "correction":  # staff say the category only
            assert record["split"] == "train"
            continue
        _labelled(record, ("train", "test"))
    for category in model_categories:
        tests = [r for r in corpus if r["category"] == category and r["split"] == "test"]
        assert len(tests) >= 15, category
    assert sum(r["text"].isascii() for r in corpus) >= 60  # English too


def test_held_out_v2_is_a_fresh_labelled_part_of_its_own(corpus):
    v2 = training.read_corpus(training.HELD_OUT_V2)
    assert len(v2) >= 150 and len({r["id"] for r in v2}) == len(v2)
    assert not {r["text"] for r in v2} & {r["text"] for r in corpus}
    for record in v2:
        _labelled(record, ("test",))
    for category in classification.load().categories.labels:
        assert sum(r["category"] == category for r in v2) >= 15, category
    assert sum(r["harm"] for r in v2) >= 10


@pytest.mark.parametrize("part, figure", [
    pytest.param(part, figure, marks=pytest.mark.xfail(
        strict=True, reason="not met yet: of 8 complaints rated critical on v1, 7 are (0.875); see README, Triage"))
    if (part, figure) in NOT_MET else (part, figure)
    for part in ("all", "v1", "v2") for figure in TARGET])
def test_held_out_figures_meet_the_issue_targets(held_out, part, figure):
    report = held_out[part]
    print(json.dumps({part: {k: getattr(report, k) for k in TARGET}}))
    assert report.harm_cases >= 10
    assert getattr(report, figure) >= TARGET[figure], (part, figure, getattr(report, figure))


def test_training_is_deterministic():
    sample = training.split(training.read_corpus(), "train")[::4]
    assert training.fit(sample) == training.fit(sample)


def test_corrections_go_into_the_training_part(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps({"id": "x-001", "text": "t", "category": "price", "severity": "low",
                                "harm": False, "channel": "wechat", "split": "train"}) + "\n",
                    encoding="utf-8")
    correction = {"_id": "case-1:3", "case_id": "case-1", "case_number": "CL-1", "text": "改约后还发原来时间的提醒",
                  "channel": "wechat", "category": "booking", "previous": "equipment", "reason": "是预约问题"}
    assert training.add_corrections(path, [correction]) == 1
    assert training.add_corrections(path, [correction]) == 0  # exported once only
    added = training.read_corpus(path)[-1]
    assert (added["category"], added["split"], added["source"]) == ("booking", "train", "correction")
    assert added["text"] == correction["text"]
