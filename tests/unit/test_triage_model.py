"""The triage model against its corpus: trains on the training part and measures the
held-out part (services/routing/triage/corpus.jsonl, split "test": every fifth
complaint of each category as written, never used for training or tuning).

The floors below are what the committed approach measures today (a regression fails
CI); the issue's targets are pinned by a strict xfail until the model reaches them."""
import json

import pytest

from services.routing import classification
from services.routing.triage import training

FLOOR = {"accuracy": 0.88, "macro_f1": 0.88, "harm_recall": 0.94, "critical_precision": 0.85}
TARGET = {"accuracy": 0.90, "macro_f1": 0.85, "harm_recall": 1.0, "critical_precision": 0.90}


@pytest.fixture(scope="module")
def corpus():
    return training.read_corpus()


@pytest.fixture(scope="module")
def held_out(corpus):
    """The held-out report of a model trained here, from the training part only."""
    artefact = training.fit(training.split(corpus, "train"))
    return training.evaluate(classification.from_artefact(artefact), training.split(corpus, "test"))


def test_the_corpus_is_large_labelled_and_split(corpus):
    assert len(corpus) >= 600
    assert len({r["id"] for r in corpus}) == len(corpus)
    model_categories = {c for c in classification.load().categories.labels}
    for record in corpus:
        assert record["category"] in model_categories and record["split"] in ("train", "test")
        assert record["text"].strip()
        if record.get("source") == "correction":  # staff say the category only
            assert record["split"] == "train"
            continue
        assert record["severity"] in ("low", "medium", "high", "critical")
        assert isinstance(record["harm"], bool)
        if record["harm"]:
            assert record["severity"] in ("high", "critical")
    for category in model_categories:
        tests = [r for r in corpus if r["category"] == category and r["split"] == "test"]
        assert len(tests) >= 15, category
    assert sum(r["text"].isascii() for r in corpus) >= 60  # English too


def test_held_out_figures_stay_above_the_floor(held_out):
    measured = {k: getattr(held_out, k) for k in FLOOR}
    print(json.dumps(measured))
    assert all(measured[k] >= FLOOR[k] for k in FLOOR), measured
    assert held_out.harm_cases >= 10


@pytest.mark.xfail(strict=True, reason="issue 8 targets not all reached yet: accuracy 0.898 (target 0.90), injuries "
                   "rated high or above 21/22 (target all), critical precision 7/8 (target 0.90); "
                   "see README, Triage")
def test_held_out_figures_meet_the_issue_targets(held_out):
    measured = {k: getattr(held_out, k) for k in TARGET}
    assert all(measured[k] >= TARGET[k] for k in TARGET), measured


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
