"""The triage model's figures on the held-out part of its corpus, and its speed.

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
    held_out = training.split(corpus, "test")

    started = time.perf_counter()
    artefact = training.fit(training.split(corpus, "train")) if args.retrain else model.read()
    triage = classification.from_artefact(artefact)
    load_seconds = time.perf_counter() - started

    report = training.evaluate(triage, held_out)
    latencies = []
    for _ in range(args.repeat):
        for record in held_out:
            t0 = time.perf_counter()
            triage.classify(record["text"])
            triage.severity(record["channel"], record["text"])
            latencies.append(time.perf_counter() - t0)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731

    print(f"model {triage.version} ({'trained now' if args.retrain else 'committed artefact'}), "
          f"corpus {len(corpus)} ({len(corpus) - len(held_out)} train / {len(held_out)} held out)")
    print(f"category accuracy   {report.accuracy:.3f}   (target >= 0.90)")
    print(f"macro-F1            {report.macro_f1:.3f}   (target >= 0.85)")
    for category, recall in sorted(report.recall.items()):
        print(f"  recall {category:<18} {recall:.3f}")
    print(f"injury/safety rated high+  {report.harm_recall:.3f}  ({round(report.harm_recall * report.harm_cases)}"
          f"/{report.harm_cases}; target 1.0)")
    print(f"critical precision  {report.critical_precision:.3f}  ({report.critical_predicted} rated critical; "
          f"target >= 0.90)")
    print(f"severity exact      {report.severity_accuracy:.3f}")
    print(f"load                {load_seconds * 1000:.0f} ms{' (includes training)' if args.retrain else ''}")
    print(f"latency per complaint  p50 {p(0.50):.2f} ms  p99 {p(0.99):.2f} ms  "
          f"mean {statistics.mean(latencies) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
