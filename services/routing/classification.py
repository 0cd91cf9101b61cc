"""Category and severity of a complaint, explained (zh-CN first, English second).

The category comes from a trained linear model over character n-grams
(services/routing/triage: corpus, artefact, training); the severity from rules that
catch harm and threats whatever the category (triage/severity.py), helped by the
model's harm head. Each decision says how sure it is, what came second and which words
decided it, and names the model version. Pure: no nameko, no pymongo.
"""
from dataclasses import dataclass, field
from functools import lru_cache

from closeloop_shared.contract import Category
from services.routing.triage import model as trained
from services.routing.triage import severity as rules
from services.routing.triage.severity import SeverityAssessment

SUBMITTER = "submitter"   # the sender chose the category: it wins
MODEL = "model"


@dataclass(frozen=True)
class Classification:
    category: str                        # a Category value
    confidence: float                    # the model's probability of `category` (1.0 when chosen by the submitter)
    runner_up: str | None = None
    runner_up_confidence: float | None = None
    features: tuple = ()                 # the words that decided it, strongest first
    model_version: str | None = None
    source: str = MODEL
    suggestions: tuple = field(default=())  # ((category, probability), ...) the top two

    def needs_triage(self, threshold):
        """A model decision below the confidence threshold waits for a person."""
        return self.source == MODEL and self.confidence < threshold

    def as_dict(self):
        return {"category": self.category, "confidence": self.confidence,
                "runner_up": self.runner_up, "runner_up_confidence": self.runner_up_confidence,
                "features": list(self.features), "model_version": self.model_version,
                "source": self.source,
                "suggestions": [{"category": c, "confidence": p} for c, p in self.suggestions]}


@dataclass(frozen=True)
class Triage:
    """The classifier and severity rules over one trained artefact."""
    categories: trained.LinearModel
    harm: trained.LinearModel

    @property
    def version(self):
        return self.categories.version

    def classify(self, content, explicit=None):
        scored = self.categories.score(content or "")
        (best, p1), (second, p2) = scored.ranking[0], scored.ranking[1]
        suggestions = scored.ranking[:2]
        if explicit:
            return Classification(Category(explicit).value, 1.0, best if best != explicit else second,
                                  p1 if best != explicit else p2, scored.evidence, scored.version,
                                  SUBMITTER, suggestions)
        return Classification(best, p1, second, p2, scored.evidence, scored.version, MODEL, suggestions)

    def harm_probability(self, content):
        return dict(self.harm.score(content or "", explain=0).ranking)["harm"]

    def severity(self, channel, content):
        return rules.assess(channel, content or "", self.harm_probability(content))


def from_artefact(artefact):
    categories = trained.LinearModel.from_artefact(artefact, "category")
    return Triage(categories, trained.LinearModel.from_artefact(artefact, "harm", categories.index))


@lru_cache(maxsize=4)
def load(path=trained.ARTEFACT):
    """The triage of the artefact at `path`, read once per process."""
    return from_artefact(trained.read(path))


def classify(content, explicit=None):
    """The sender's category wins; otherwise the model's, with its confidence."""
    return load().classify(content, explicit)


def assess_severity(channel, content) -> SeverityAssessment:
    return load().severity(channel, content)


def severity(channel, content):
    """critical / high / medium / low (triage/severity.py says when)."""
    return assess_severity(channel, content).level
