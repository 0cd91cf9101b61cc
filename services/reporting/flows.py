"""reporting's use cases: take in an event (keep it, project it onto its case's row,
queue what it adds to the pre-aggregated buckets), fold the queued increments into the
buckets in batches, and rebuild the read model by replay."""
import logging
import time
from datetime import datetime, timedelta
from datetime import time as clock_time

from closeloop_shared import events as ev
from closeloop_shared.clock import CHINA
from closeloop_shared.contract import Role
from services.reporting import facts as pre
from services.reporting import read_model, reports


def enrichment(event_type, data, organisation):
    """What the event does not carry but the buckets need, as known when it arrived:
    the store's region and brand (a store moved later keeps its past in the old region)."""
    if event_type not in (ev.CASE_SUBMITTED, ev.REVISIT_TASK_COMPLETED):
        return {}
    store = organisation.store(data["store_id"])
    if store is None:
        return {}
    return {"region_id": store.region_id, "brand_id": organisation.brand_of_store(store.store_id)}


log = logging.getLogger(__name__)
FOLD_BATCH = 500  # pending increments (events) folded per transaction


def take_in(repository, event_type, payload, received_at, organisation):
    """Record and count one event once, however often it is delivered: the row's change
    and the event's record with what it adds to the buckets (its pending increments)
    commit together or not at all (a redelivery's record fails on the event's key and
    undoes the rest). The shared buckets are left to the
    folder (`fold`), run here at once when nobody else is folding: concurrent handlers
    never write the same bucket. Returns the case's row when this delivery counted it
    (None: a redelivery, or no case's event)."""
    data = ev.load(event_type, payload)
    key = pre.event_key(event_type, data)
    extra = enrichment(event_type, data, organisation)
    counted = {}

    def transaction(session):  # retried on a write conflict: only the committed try counts
        counted.clear()
        row, delta = project(repository, event_type, data, extra, session)
        increments = pre.entries(delta)
        repository.record(key, event_type, payload, received_at, extra, increments, session=session)
        counted.update(row=row, queued=bool(increments))  # only once recorded: a redelivery counts nothing

    repository.atomically(transaction)
    if counted.get("queued"):
        try:
            fold(repository)
        except Exception as exc:  # counted and committed already: the fold timer folds it
            log.warning("fold after an event failed, left to the timer", extra={"error": str(exc)[:200]})
    return counted.get("row")


def project(repository, event_type, data, extra, session=None):
    """Bring the event's case row up to date: (the row, or None for an event of no case;
    what the event adds to the buckets, {bucket: {path: n}}). The row is read once,
    changed by the pure read model and written once (inside the caller's transaction,
    so a concurrent change of the same row is a write conflict and the event is retried)."""
    if event_type == ev.REVISIT_TASK_COMPLETED:  # no case: straight to the buckets
        return None, pre.programme_contribution(data, extra.get("region_id"), extra.get("brand_id"))
    change = read_model.project(event_type, data)
    if extra:
        change = read_model.Change(fields={**change.fields, **extra}, maxima=change.maxima,
                                   guarded=change.guarded, revisit=change.revisit,
                                   correction=change.correction, breach=change.breach)
    case_id = data["case_id"]
    before = repository.row(case_id, session=session) or {"_id": case_id, "case_id": case_id}
    row = read_model.apply(before, change)
    repeat_facts_moved = "repeat_gap_days" not in before or any(
        before.get(name) != row.get(name) for name in REPEAT_FACTS)
    return settle(repository, row, session, repeat_facts_moved=repeat_facts_moved)


# What decides whether cases repeat one another: only a change of these needs the
# customer's other cases read again.
REPEAT_FACTS = ("customer_key", "submitted_at", "category", "corrected_category")


def settle(repository, row, session=None, repeat_facts_moved=True, follow=True):
    """Store the row with what it now contributes to the buckets beyond what it had (its
    `counted` brought up to date). When its repeat facts moved, first work out again
    whether it repeats an earlier case and, with `follow`, afterwards settle the same
    customer's later cases (within the longest repeat window) again: whether they repeat
    this one depends on what it now says (its category, its customer), which may arrive
    after them (events come in on separate queues). Returns (the row, the increments of
    them all)."""
    neighbours = []
    if repeat_facts_moved:
        # a case of no known category yet repeats none and is repeated by none: no read
        if row.get("customer_key") and row.get("submitted_at") and category_of(row):
            repository.mark_customer(row["customer_key"], session)
            neighbours = repository.customer_cases(row, max(pre.REPEAT_WINDOWS), session)
        row["repeat_gap_days"] = repeat_gap_days(row, neighbours)
    new = pre.contribution(row)
    old = {}
    for bucket, path, n in row.get("counted", []):
        old.setdefault(bucket, {})[path] = n
    row["counted"] = pre.entries(new)
    repository.save(row, session=session)
    delta = pre.difference(new, old)
    if follow:
        for later in neighbours:
            if later["submitted_at"] >= row["submitted_at"]:
                delta = pre.added(delta, settle(repository, repository.row(later["_id"], session=session),
                                                session, follow=False)[1])
    return row, delta


def fold(repository, batch=FOLD_BATCH, batches=1):
    """Apply up to `batches` x `batch` pending increments to the buckets, if nobody else
    is folding (else 0 at once: the current folder or the next one takes them). Each
    batch in one transaction: read the oldest pending increments, sum them per bucket,
    $inc each touched bucket once, drop the pending increments; a failure anywhere
    commits nothing (the next folder redoes it all). Returns how many were folded."""
    done = 0
    with repository.folding() as held:
        while held and batches:
            folded = fold_batch(repository, batch)
            done += folded
            batches -= 1
            if folded < batch:
                break
    return done


def fold_batch(repository, batch=FOLD_BATCH):
    """One batch of `fold`, without the folder's lease (the caller holds it)."""
    folded = []

    def transaction(session):
        folded.clear()
        pending = repository.pending_batch(batch, session=session)
        if not pending:
            return
        repository.increment(pre.folded(p["increments"] for p in pending), session=session)
        repository.unqueue([p["_id"] for p in pending], session=session)
        folded.extend(pending)

    repository.atomically(transaction)
    return len(folded)


def fold_all(repository, patience=30.0, pause=0.05):
    """Fold until nothing is pending (waiting while another worker or replica folds):
    the buckets then count every event taken in before the call. For the timer (the
    safety net behind the fold after each event), the replay, and tests that read reports
    at once. Returns how many this call folded; TimeoutError after `patience` seconds."""
    done, deadline = 0, time.monotonic() + patience
    while True:
        with repository.folding() as held:
            if held:
                while True:
                    folded = fold_batch(repository)
                    done += folded
                    if folded < FOLD_BATCH:
                        return done
        if time.monotonic() > deadline:
            raise TimeoutError("another folder held the report buckets' lease throughout")
        time.sleep(pause)


def category_of(row):
    """The case's category as last corrected, else as classified (None: not yet known)."""
    return row.get("corrected_category") or row.get("category")


def repeat_gap_days(row, neighbours):
    """Days since the same customer's latest earlier case of the same category (within
    the longest window), or None; `neighbours` are the customer's other cases around it."""
    category = category_of(row)
    if not category or not row.get("submitted_at"):
        return None
    earlier = [other["submitted_at"] for other in neighbours if other["submitted_at"] <= row["submitted_at"]
               and category_of(other) == category]
    return (row["submitted_at"] - max(earlier)).days if earlier else None


def fold_legacy(repository, batches=20):
    """What an older release left waiting in `pending_increments` (one document per
    event), folded into the buckets like any pending increments, under the same folder's
    lease as every fold, old release or new: each folded once, while replicas of both
    releases run side by side during an upgrade. Idle (nothing left there), one read."""
    legacy = repository.legacy()
    return fold(legacy, batches=batches) if legacy.any_pending() else 0


def fold_backlog(repository, batches=20):
    """The timer's safety net: fold what waits (what a handler left when another was
    folding), up to `batches` batches, unless another worker or replica is folding. Idle,
    it only looks (one read, not the lease's two writes and a transaction)."""
    return fold(repository, batches=batches) if repository.any_pending() else 0


def rebuild(live, scratch, progress=lambda done: None):
    """Replay every recorded event into `scratch` (empty), in the order received, as the
    service takes events in (each event's increments queued under its key, folded in
    batches). Returns how many events were replayed."""
    done = 0
    for recorded in live.recorded_events():
        data = ev.load(recorded["type"], recorded["payload"])
        _, delta = project(scratch, recorded["type"], data, recorded.get("enrichment") or {})
        if delta:
            scratch.queue(recorded["_id"], pre.entries(delta), recorded["received_at"])
        done += 1
        if done % FOLD_BATCH == 0:
            fold_all(scratch)
        progress(done)
    fold_all(scratch)
    return done


def differences(live, rebuilt):
    """The buckets where live and rebuilt disagree: {bucket id: (live, rebuilt)}. Both
    are folded first: what waits to be folded is part of each model."""
    for repository in (live, rebuilt):
        fold_all(repository)
    left, right = (_normalised(repository.buckets.find({})) for repository in (live, rebuilt))
    return {bucket: (left.get(bucket), right.get(bucket))
            for bucket in set(left) | set(right) if left.get(bucket) != right.get(bucket)}


def _normalised(documents):
    """Bucket documents without zero counters (a correction leaves zeros behind in the
    live model that a replay never writes)."""
    def prune(value):
        if isinstance(value, dict):
            kept = {k: prune(v) for k, v in value.items() if k != "_id"}
            return {k: v for k, v in kept.items() if v not in (0, {})}
        return value
    pruned = {document["_id"]: prune(document) for document in documents}
    return {bucket: value for bucket, value in pruned.items() if value}


def weekly_digests(repository, organisation, now, hour):
    """From `hour` (China) on Monday: last week's digest of every region and brand not yet
    started, as [(digest id, event)] to publish (each started once, by one replica)."""
    today = now.astimezone(CHINA)
    monday = today.date() - timedelta(days=today.weekday())
    if today < datetime.combine(monday, clock_time(hour), tzinfo=CHINA):
        return []
    week = reports.week_of(monday - timedelta(days=7))
    units = [("region", r) for r in sorted(organisation.regions)] + [("brand", b) for b in sorted(organisation.brands)]
    started = []
    for level, unit in units:
        digest_id = f"{week.first.isoformat()}:{level}:{unit}"
        if repository.digest_started(digest_id):
            continue
        event = ev.new_event(ev.WEEKLY_DIGEST_READY, {
            **digest(repository, level, unit, week, digest_id), **recipients(organisation, level, unit)})
        if repository.start_digest(digest_id, event, now):
            started.append((digest_id, event))
    return started


MANAGER_ROLES = {"region": (Role.REGIONAL_MANAGER,), "brand": (Role.GENERAL_MANAGER, Role.CUSTOMER_SERVICE)}


def recipients(organisation, level, unit):
    """Whom a unit's digest is for (its managers as the organisation has them now), its
    name, and for a region one of its stores (where notify finds the region's WeCom group
    and the brand's policy). A brand's digest names no store: notify's robot lookup would
    fall back from the brand's group to that store's region or store group, showing the
    brand's figures there; it goes by e-mail."""
    stores = organisation.stores_of_region(unit) if level == "region" else organisation.stores_of_brand(unit)
    named = organisation.regions.get(unit) if level == "region" else organisation.brands.get(unit)
    managers = [person.as_dict() for role in MANAGER_ROLES[level]
                for person in organisation.all_active(role, **{f"{level}_id": unit})]
    if not managers and named is not None and level == "region":  # as the ladder: the brand's service department
        managers = [person.as_dict() for person in organisation.all_active(
            Role.CUSTOMER_SERVICE, brand_id=named.brand_id)]
    return {"unit_name": named.name if named else unit, "store_id": min(stores, default=None) if level == "region" else None,
            "managers": managers}


def digest(repository, level, unit, week, digest_id):
    the_plan = reports.Plan(level, {"all": [unit]})
    now = reports.report(repository, reports.GroupBy.NONE, the_plan, week)
    totals, previous = now["groups"]["all"], reports.report(
        repository, reports.GroupBy.NONE, the_plan, reports.week_of(week.first - timedelta(days=7)))["groups"]["all"]
    figures = reports.headline(totals)
    return {"digest_id": digest_id, "level": level, "unit_id": unit, "week_from": week.first, "week_to": week.last,
            **figures, "cases_change": figures["cases"] - previous["cases"], "root_causes": totals["root_causes"]}
