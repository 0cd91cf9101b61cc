"""Triage: the labelled corpus (corpus.jsonl: train part and held-out v1;
heldout_v2.jsonl: held-out v2), the trained category model and the severity rules.

    python -m services.routing.triage train      # retrain model.json from corpus.jsonl (train part)
    python -m services.routing.triage evaluate   # held-out figures (v1 and v2) of the committed model
    python -m services.routing.triage export     # staff corrections -> corpus.jsonl (then train)
"""
