"""Rebuild reporting's read model from the events it recorded, and prove the rebuild
equals the live model.

    python -m services.reporting.replay   (MONGO_URI, MONGO_DB_PREFIX from the environment)

Replays `reporting_events` (in the order received) into empty `rebuild_*` collections
through the same code the service runs (increments queued per event, folded in batches),
with a progress bar on stderr, then folds what waits in the live model (as its service
would within moments) and compares every bucket with the live one. Exit status 0: equal; 1: the buckets that differ are
listed. The live model's contents are not changed (folding only moves its waiting
increments into its buckets, as the service does); run it while the service runs (events
arriving meanwhile are in the live model and not in the rebuild: run it again when quiet).

    python -m services.reporting.replay --promote

makes the rebuild the live model (after an upgrade that changed what the buckets count):
stop reporting first (events wait in its queues meanwhile), then start it again."""
import argparse
import os
import sys

from closeloop_shared import events as ev
from closeloop_shared.config import MONGO_DB_PREFIX, MONGO_URI
from closeloop_shared.mongo import connect_service_db
from services.reporting import flows
from services.reporting.repository import REBUILD, FactsRepository


def progress_bar(total, width=40):
    def show(done):
        out = sys.stderr
        if done % 500 and done != total:
            return
        filled = width * done // max(total, 1)
        out.write(f"\rreplay [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            out.write("\n")
        out.flush()
    return show


REBUILT = ("case_facts", "report_buckets")  # what a promotion makes live
SCRATCH = ("pending_increments", "report_folder")  # the rebuild's folding, empty once it is done


def promote(db):
    """The rebuilt rows and buckets become the live ones (with the indexes they were
    built with). Nothing waits to be folded on either side by then (both were folded
    for the comparison, and reporting is stopped)."""
    for name in REBUILT:
        db[f"{REBUILD}{name}"].rename(name, dropTarget=True)
    for name in SCRATCH:
        db[f"{REBUILD}{name}"].drop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--promote", action="store_true",
                        help="replace the live rows and buckets by the rebuild (reporting stopped)")
    args = parser.parse_args(argv)
    config = {key: os.environ.get(key) for key in (MONGO_URI, MONGO_DB_PREFIX)}  # unset: the defaults
    client, db = connect_service_db(config, ev.REPORTING)
    try:
        for name in REBUILT + SCRATCH:
            db[f"{REBUILD}{name}"].drop()
        FactsRepository.ensure_indexes(db, REBUILD)
        live, rebuilt = FactsRepository(db), FactsRepository(db, REBUILD)
        replayed = flows.rebuild(live, rebuilt, progress_bar(db["reporting_events"].count_documents({})))
        differing = flows.differences(live, rebuilt)
        if args.promote:
            promote(db)
            print(f"{replayed} events replayed; the rebuild is now the live model ({len(differing)} buckets changed)")
            return 0
        for bucket, (was, now) in sorted(differing.items()):
            print(f"differs: {bucket}\n  live:    {was}\n  rebuilt: {now}")
        print(f"{replayed} events replayed; {'the rebuild equals the live model' if not differing else f'{len(differing)} buckets differ'}")
        return 1 if differing else 0
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
