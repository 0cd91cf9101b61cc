"""reporting's use cases: take in an event (keep it, project it onto its case's row,
bring the pre-aggregated buckets in step) and rebuild the read model by replay."""
from datetime import datetime, time, timedelta

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


def take_in(repository, event_type, payload, received_at, organisation):
    """Record and count one event once, however often it is delivered: the event, the
    row's change and the buckets' increments commit together or not at all. Returns the
    case's row when this delivery counted it (None: a redelivery, or no case's event)."""
    data = ev.load(event_type, payload)
    key = pre.event_key(event_type, data)
    extra = enrichment(event_type, data, organisation)
    counted = {}

    def transaction(session):  # retried on a write conflict: only the committed try counts
        counted.clear()
        if repository.record(key, event_type, payload, received_at, extra, session=session):
            counted["row"] = project(repository, event_type, data, extra, session)

    repository.atomically(transaction)
    return counted.get("row")


def project(repository, event_type, data, extra, session=None):
    if event_type == ev.REVISIT_TASK_COMPLETED:  # no case: straight into the buckets
        contribution = pre.programme_contribution(data, extra.get("region_id"), extra.get("brand_id"))
        repository.increment(contribution, session=session)
        return None
    change = read_model.project(event_type, data)
    if extra:
        change = read_model.Change(fields={**change.fields, **extra}, maxima=change.maxima,
                                   guarded=change.guarded, revisit=change.revisit,
                                   correction=change.correction, breach=change.breach)
    repository.apply(data["case_id"], change, session=session)
    return settle(repository, data["case_id"], session)


def settle(repository, case_id, session=None, follow=True):
    """Add to the buckets what the case's row now contributes beyond what it had; then
    settle the same customer's later cases (within the longest repeat window) again:
    whether they repeat this one depends on what it now says (its category, its
    customer), which may arrive after them (events come in on separate queues)."""
    row = repository.row(case_id, session=session)
    derived = {"repeat_gap_days": repeat_gap_days(repository, row, session)}
    row.update(derived)
    new = pre.contribution(row)
    old = {}
    for bucket, path, n in row.get("counted", []):
        old.setdefault(bucket, {})[path] = n
    counted = [[bucket, path, n] for bucket, paths in sorted(new.items()) for path, n in sorted(paths.items())]
    repository.count(case_id, derived, pre.difference(new, old), counted, session=session)
    if follow and row.get("customer_key") and row.get("submitted_at"):
        for later in repository.later_cases(row, max(pre.REPEAT_WINDOWS), session):
            settle(repository, later, session, follow=False)
    return row


def repeat_gap_days(repository, row, session=None):
    """Days since the same customer's previous case of the same category (within the
    longest window), or None."""
    if not row.get("customer_key") or not row.get("submitted_at") or not (
            row.get("corrected_category") or row.get("category")):
        return None
    earlier = repository.latest_earlier_case(row, max(pre.REPEAT_WINDOWS), session)
    return None if earlier is None else (row["submitted_at"] - earlier).days


def rebuild(live, scratch, progress=lambda done: None):
    """Replay every recorded event into `scratch` (empty), in the order received.
    Returns how many events were replayed."""
    done = 0
    for recorded in live.recorded_events():
        data = ev.load(recorded["type"], recorded["payload"])
        project(scratch, recorded["type"], data, recorded.get("enrichment") or {})
        done += 1
        progress(done)
    return done


def differences(live, rebuilt):
    """The buckets where live and rebuilt disagree: {bucket id: (live, rebuilt)}."""
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
    if today < datetime.combine(monday, time(hour), tzinfo=CHINA):
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
