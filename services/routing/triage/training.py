"""Training and evaluation of the triage model (scikit-learn; an ops and CI tool, never
imported by the running service).

Deterministic: the corpus is read in file order, lbfgs has no randomness, and the
artefact's weights are rounded, so the same corpus always gives the same model.json
(and the same version, a digest of its content)."""
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from services.routing.triage.features import features

CORPUS = Path(__file__).with_name("corpus.jsonl")
# Held out v2: complaints written after the model of 1490 complaints, before any model
# output on them was seen; never trained or tuned on (see the README, Triage).
HELD_OUT_V2 = Path(__file__).with_name("heldout_v2.jsonl")
DIGITS = 5
C_CATEGORY = 20.0
C_HARM = 20.0
MIN_DF = 1


def read_corpus(path=CORPUS):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def split(records, part):
    return [r for r in records if r["split"] == part]


def held_out_parts(corpus_path=CORPUS, v2_path=HELD_OUT_V2):
    """{"v1": the corpus's test part, "v2": the second held-out file}."""
    return {"v1": split(read_corpus(corpus_path), "test"), "v2": read_corpus(v2_path)}


def _head(classifier, keep):
    coef = classifier.coef_
    labels = [str(label) for label in classifier.classes_]
    intercepts = list(classifier.intercept_)
    if len(labels) == 2:  # binary: one weight vector for the positive class; write both sides
        coef = [[-c / 2 for c in coef[0]], [c / 2 for c in coef[0]]]
        intercepts = [-intercepts[0] / 2, intercepts[0] / 2]
    return {"labels": labels, "intercepts": [round(float(v), DIGITS) for v in intercepts],
            "weights": [[round(float(coef[i][j]), DIGITS) for i in range(len(labels))] for j in keep]}


def fit(records):
    """The artefact (a dict, JSON-ready) trained on `records`: one vocabulary (feature,
    idf), a category head and a harm head."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = [r["text"] for r in records]
    vectoriser = TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=MIN_DF)
    matrix = vectoriser.fit_transform(texts)
    category = LogisticRegression(C=C_CATEGORY, max_iter=5000).fit(matrix, [r["category"] for r in records])
    known = [i for i, r in enumerate(records) if r.get("harm") is not None]  # corrections: unknown
    harm = LogisticRegression(C=C_HARM, max_iter=5000, class_weight="balanced").fit(
        matrix[known], ["harm" if records[i]["harm"] else "none" for i in known])
    names = vectoriser.get_feature_names_out()
    keep = list(range(len(names)))
    artefact = {
        "vocabulary": [[str(names[j]), round(float(vectoriser.idf_[j]), DIGITS)] for j in keep],
        "heads": {"category": _head(category, keep), "harm": _head(harm, keep)},
        "sublinear_tf": True}
    digest = hashlib.sha256(json.dumps(artefact, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return {"version": f"triage-{digest[:12]}", "trained_on": len(records),
            "by_category": dict(sorted(Counter(r["category"] for r in records).items())), **artefact}


def write(artefact, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(artefact, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


@dataclass(frozen=True)
class Report:
    n: int
    accuracy: float
    macro_f1: float
    recall: dict          # category -> recall
    harm_cases: int
    harm_recall: float    # injury/safety cases rated high or above
    critical_predicted: int
    critical_precision: float
    severity_accuracy: float
    misses: tuple         # (id, expected, got, confidence)


def evaluate(triage, records):
    """How `triage` (a services.routing.triage.Triage) does on `records`."""
    from sklearn.metrics import f1_score

    expected, got, misses = [], [], []
    harm_total = harm_caught = crit_pred = crit_right = sev_right = 0
    for r in records:
        decision = triage.classify(r["text"])
        level = triage.severity(r["channel"], r["text"]).level
        expected.append(r["category"])
        got.append(decision.category)
        if decision.category != r["category"]:
            misses.append((r["id"], r["category"], decision.category, decision.confidence))
        if r.get("harm"):
            harm_total += 1
            harm_caught += level in ("high", "critical")
        if level == "critical":
            crit_pred += 1
            crit_right += r["severity"] == "critical"
        sev_right += level == r["severity"]
    labels = sorted(set(expected))
    recall = {c: sum(e == g == c for e, g in zip(expected, got)) / max(1, expected.count(c)) for c in labels}
    return Report(
        n=len(records), accuracy=sum(e == g for e, g in zip(expected, got)) / len(records),
        macro_f1=float(f1_score(expected, got, labels=labels, average="macro", zero_division=0)),
        recall=recall, harm_cases=harm_total, harm_recall=harm_caught / max(1, harm_total),
        critical_predicted=crit_pred, critical_precision=crit_right / max(1, crit_pred),
        severity_accuracy=sev_right / len(records), misses=tuple(misses))




def add_corrections(path, corrections):
    """Append staff corrections (routing's corrections store) to the corpus's training
    part, each once (by case); the held-out part is never touched. Returns how many
    were added. Severity is not corrected by staff: their text's severity is left for
    the rules ("severity" and "harm": null; the harm head skips them)."""
    records = read_corpus(path)
    known = {r.get("case_id") for r in records if r.get("case_id")}
    latest = {}
    for correction in corrections:  # oldest first: the last correction of a case wins
        latest[correction["case_id"]] = correction
    added = [c for case_id, c in latest.items() if case_id not in known]
    with open(path, "a", encoding="utf-8") as f:
        for correction in added:
            f.write(json.dumps({
                "id": f"corr-{correction['case_number']}", "text": correction["text"],
                "category": correction["category"], "severity": None, "harm": None,
                "channel": correction["channel"], "split": "train", "source": "correction",
                "case_id": correction["case_id"], "previous": correction.get("previous"),
                "reason": correction.get("reason")}, ensure_ascii=False) + "\n")
    return len(added)
