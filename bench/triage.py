"""The triage model's figures on its two held-out parts (v1: the corpus's test part; v2:
services/routing/triage/heldout_v2.jsonl), and its speed.

    python -m bench.triage            # the committed artefact (services/routing/triage/model.json)
    python -m bench.triage --retrain  # train on the training part first (needs scikit-learn: requirements-dev)

Prints held-out category accuracy, macro-F1 and per-category recall, severity recall
for injuries and safety incidents (rated high or above), critical precision, the time
to load the artefact and the per-complaint latency (category + severity, p50/p99).
"""
import argparse
import statistics
import time

from services.routing import classification
from services.routing.triage import model, training


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.triage")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the held-out part for latency")
    args = parser.parse_args(argv)
    corpus = training.read_corpus()
    parts = training.held_out_parts()

    started = time.perf_counter()
    artefact = training.fit(training.split(corpus, "train")) if args.retrain else model.read()
    triage = classification.from_artefact(artefact)
    load_seconds = time.perf_counter() - started

    print(f"model {triage.version} ({'trained now' if args.retrain else 'committed artefact'}), "
          f"corpus {len(corpus)} ({len(training.split(corpus, 'train'))} train / {len(parts['v1'])} held out v1)"
          f", held out v2 {len(parts['v2'])}")
    for part, records in parts.items():
        _print_report(part, training.evaluate(triage, records))
    latencies = []
    for _ in range(args.repeat):
        for record in parts["v1"] + parts["v2"]:
            t0 = time.perf_counter()
            triage.classify(record["text"])
            triage.severity(record["channel"], record["text"])
            latencies.append(time.perf_counter() - t0)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(f"load                {load_seconds * 1000:.0f} ms{' (includes training)' if args.retrain else ''}")
    print(f"latency per complaint  p50 {p(0.50):.2f} ms  p99 {p(0.99):.2f} ms  "
          f"mean {statistics.mean(latencies) * 1000:.2f} ms")
    return 0


def _print_report(part, report):
    print(f"-- held out {part} ({report.n})")
    print(f"category accuracy   {report.accuracy:.3f}   (target >= 0.90)")
    print(f"macro-F1            {report.macro_f1:.3f}   (target >= 0.85)")
    for category, recall in sorted(report.recall.items()):
        print(f"  recall {category:<18} {recall:.3f}")
    print(f"injury/safety rated high+  {report.harm_recall:.3f}  ({round(report.harm_recall * report.harm_cases)}"
          f"/{report.harm_cases}; target 1.0)")
    print(f"critical precision  {report.critical_precision:.3f}  "
          f"({round(report.critical_precision * report.critical_predicted)} of {report.critical_predicted} "
          f"rated critical; target >= 0.90)")
    print(f"severity exact      {report.severity_accuracy:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
