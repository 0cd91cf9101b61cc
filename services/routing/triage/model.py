"""The trained category model as the service runs it: a TF-IDF weighted bag of
features (features.py) times one weight vector per category, softmax over the
categories. The artefact (model.json) is written by `python -m services.routing.triage
train` from scikit-learn's fit; reading it needs neither scikit-learn nor numpy, so
routing loads it in milliseconds. Pure: no nameko, no pymongo."""
import json
import math
from dataclasses import dataclass
from pathlib import Path

from services.routing.triage.features import features

ARTEFACT = Path(__file__).with_name("model.json")


@dataclass(frozen=True)
class Scored:
    """The model's view of one text: categories best first with their probability, and
    the features that most separated the winner from the runner-up."""
    ranking: tuple      # ((category, probability), ...), best first
    evidence: tuple     # feature strings, strongest first
    version: str


@dataclass(frozen=True)
class LinearModel:
    """One head of the artefact: a weight per (feature, label) over the shared
    vocabulary, plus intercepts."""
    version: str
    labels: tuple
    index: dict          # feature -> row
    idf: tuple           # row -> idf
    weights: tuple       # row -> (weight per label)
    intercepts: tuple
    sublinear_tf: bool = True

    @classmethod
    def from_artefact(cls, artefact, head, index=None):
        """`index` lets two heads share one vocabulary dict."""
        vocabulary = artefact["vocabulary"]
        if index is None:
            index = {term: row for row, (term, _) in enumerate(vocabulary)}
        part = artefact["heads"][head]
        return cls(version=artefact["version"], labels=tuple(part["labels"]), index=index,
                   idf=tuple(idf for _, idf in vocabulary), weights=tuple(map(tuple, part["weights"])),
                   intercepts=tuple(part["intercepts"]), sublinear_tf=artefact.get("sublinear_tf", True))

    def weighted(self, text):
        """{row: tf-idf weight} for the features the model knows, L2-normalised."""
        counts = {}
        for feature in features(text):
            row = self.index.get(feature)
            if row is not None:
                counts[row] = counts.get(row, 0) + 1
        weighted = {}
        for row, count in counts.items():
            tf = 1 + math.log(count) if self.sublinear_tf else count
            weighted[row] = tf * self.idf[row]
        norm = math.sqrt(sum(w * w for w in weighted.values())) or 1.0
        return {row: w / norm for row, w in weighted.items()}

    def score(self, text, explain=5):
        weighted = self.weighted(text)
        logits = list(self.intercepts)
        for row, w in weighted.items():
            for i, coefficient in enumerate(self.weights[row]):
                logits[i] += w * coefficient
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        ranking = sorted(((label, e / total) for label, e in zip(self.labels, exps)),
                         key=lambda pair: (-pair[1], pair[0]))
        evidence = ()
        if explain:
            best, second = (self.labels.index(ranking[i][0]) for i in (0, 1))
            margin = sorted(((w * (self.weights[row][best] - self.weights[row][second]), row)
                             for row, w in weighted.items()), reverse=True)
            terms = self._terms()
            evidence = tuple(dict.fromkeys(_readable(terms[row]) for contribution, row in margin[:explain]
                                           if contribution > 0))
        return Scored(tuple((label, round(p, 4)) for label, p in ranking), evidence, self.version)

    def _terms(self):
        terms = self.__dict__.get("_term_list")
        if terms is None:
            terms = [None] * len(self.idf)
            for term, row in self.index.items():
                terms[row] = term
            object.__setattr__(self, "_term_list", terms)
        return terms


def _readable(feature):
    return feature.split(":", 1)[1] if feature[:2] in ("w:", "s:", "b:", "k:") else feature


def read(path=ARTEFACT):
    """The artefact as written by training (a dict: version, heads)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
