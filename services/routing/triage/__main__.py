"""python -m services.routing.triage train|evaluate|export (see __init__.py).

export reads routing's corrections store (MONGO_URI, MONGO_DB_PREFIX from the
environment, defaults closeloop_shared.config) and appends every correction not yet in
the corpus to its training part; train then refits the model from the training part.
"""
import argparse
import json
import os
import sys

from services.routing.triage import training
from services.routing.triage.model import ARTEFACT


def _train(args):
    records = training.split(training.read_corpus(args.corpus), "train")
    artefact = training.fit(records)
    training.write(artefact, args.out)
    print(f"trained {artefact['version']} on {len(records)} complaints -> {args.out}")
    _evaluate(args)


def _evaluate(args):
    from services.routing.classification import from_artefact
    from services.routing.triage.model import read
    triage = from_artefact(read(args.out))
    for part, records in training.held_out_parts(args.corpus).items():
        report = training.evaluate(triage, records)
        print(json.dumps({"model_version": triage.version, "part": part, "held_out": report.n,
                          "accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4),
                          "recall": {c: round(r, 3) for c, r in report.recall.items()},
                          "harm_recall": report.harm_recall, "harm_cases": report.harm_cases,
                          "critical_precision": report.critical_precision,
                          "critical_predicted": report.critical_predicted,
                          "severity_accuracy": round(report.severity_accuracy, 4)},
                         ensure_ascii=False, indent=1))
        if args.misses:
            for miss in report.misses:
                print("miss", part, *miss)


def _export(args):
    from closeloop_shared.config import MONGO_DB_PREFIX, MONGO_URI
    from closeloop_shared.mongo import connect_service_db
    from services.routing.repository import CorrectionRepository
    config = {key: os.environ.get(key) for key in (MONGO_URI, MONGO_DB_PREFIX)}
    corrections = CorrectionRepository(connect_service_db(config, "routing")).all()
    added = training.add_corrections(args.corpus, corrections)
    print(f"{added} correction(s) added to {args.corpus} ({len(corrections)} on record); "
          "now run: python -m services.routing.triage train")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m services.routing.triage")
    parser.add_argument("command", choices=("train", "evaluate", "export"))
    parser.add_argument("--corpus", default=str(training.CORPUS))
    parser.add_argument("--out", default=str(ARTEFACT), help="the artefact (model.json)")
    parser.add_argument("--misses", action="store_true", help="list held-out complaints it got wrong")
    args = parser.parse_args(argv)
    {"train": _train, "evaluate": _evaluate, "export": _export}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
