"""Triage: the labelled corpus, the trained category model and the severity rules.

    python -m services.routing.triage train      # retrain model.json from corpus.jsonl (train part)
    python -m services.routing.triage evaluate   # held-out figures of the committed model
    python -m services.routing.triage export     # staff corrections -> corpus.jsonl (then train)
"""
