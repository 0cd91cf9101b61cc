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
    version: str
    labels: tuple
    vocabulary: dict     # feature -> (idf, (weight per label))
    intercepts: tuple
    sublinear_tf: bool = True

    @classmethod
    def from_dict(cls, data):
        vocabulary = {term: (idf, tuple(weights)) for term, idf, weights in data["features"]}
        return cls(version=data["version"], labels=tuple(data["labels"]), vocabulary=vocabulary,
                   intercepts=tuple(data["intercepts"]), sublinear_tf=data.get("sublinear_tf", True))

    def weights(self, text):
        """{feature: tf-idf weight} for the features the model knows, L2-normalised."""
        counts = {}
        for feature in features(text):
            if feature in self.vocabulary:
                counts[feature] = counts.get(feature, 0) + 1
        weighted = {}
        for feature, count in counts.items():
            tf = 1 + math.log(count) if self.sublinear_tf else count
            weighted[feature] = tf * self.vocabulary[feature][0]
        norm = math.sqrt(sum(w * w for w in weighted.values())) or 1.0
        return {feature: w / norm for feature, w in weighted.items()}

    def score(self, text, explain=5):
        weighted = self.weights(text)
        logits = list(self.intercepts)
        for feature, w in weighted.items():
            for i, coefficient in enumerate(self.vocabulary[feature][1]):
                logits[i] += w * coefficient
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        ranking = sorted(((label, e / total) for label, e in zip(self.labels, exps)),
                         key=lambda pair: (-pair[1], pair[0]))
        best, second = (self.labels.index(ranking[i][0]) for i in (0, 1))
        margin = sorted(((w * (self.vocabulary[f][1][best] - self.vocabulary[f][1][second]), f)
                         for f, w in weighted.items()), reverse=True)
        evidence = tuple(_readable(f) for contribution, f in margin[:explain] if contribution > 0)
        return Scored(tuple((label, round(p, 4)) for label, p in ranking), evidence, self.version)


def _readable(feature):
    return feature.split(":", 1)[1] if feature[:2] in ("w:", "s:", "b:", "k:") else feature


def read(path=ARTEFACT):
    """The artefact as written by training (a dict: version, heads)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
