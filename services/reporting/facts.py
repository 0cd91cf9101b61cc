"""The pre-aggregated facts: what one case adds to the report buckets. Pure.

A case counts in the buckets of the day (China time) it was submitted, at every level of
the organisation it belonged to then (its store, region and brand), per day and per month,
under its category (a staff correction wins). A bucket document holds, per category, plain
counters (`c.<category>.<metric>`), per handling staff member `s.<staff id>.<metric>`, and
per classification model version `m.<version>.<metric>` (what it classified, what staff
corrected); a report sums the few documents its period and scope cover, so it costs the same whatever
the number of cases.

The buckets follow the case rows by difference: a case row remembers what it already
added (`counted`), and an event that changes the row adds only `contribution(new) -
counted`. Redelivered events change nothing, so they add nothing."""
import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from closeloop_shared import events as ev
from closeloop_shared.clock import CHINA
from closeloop_shared.contract import CaseStatus, ClockName, RefundOption

UNCLASSIFIED = "unclassified"
LEVELS = ("store", "region", "brand")
DAY, MONTH = "day", "month"
REPEAT_WINDOWS = (30, 90)  # days: the same customer and category again (seed 001's repeat problems)
SATISFIED_SCORE = 4  # a revisit scored 4 or 5 is satisfied (as followup judges a case's revisit)
TIMED_CLOCKS = (ClockName.FIRST_RESPONSE.value, ClockName.RESOLUTION.value, ClockName.REPORT.value)


def event_key(event_type, data):
    """The stable identity of an event, for idempotency: its own event_id where the
    schema has one, else what makes it unique in the case's life (the emitter publishes a
    given fact once per case, per round, per moment)."""
    if data.get("event_id"):
        return f"{event_type}:{data['event_id']}"
    natural = {
        ev.CASE_SUBMITTED: (),
        ev.CASE_ROUTED: ("routed_at",),
        ev.CASE_FIRST_RESPONDED: (),
        ev.CASE_RESOLVED: ("resolution_round",),
        ev.CASE_REOPENED: ("reopened_at",),
        ev.CASE_CLOSED: ("closed_at",),
        ev.CASE_ESCALATED: ("rung", "escalated_at"),
        ev.CASE_DEADLINE_BREACHED: ("clock", "due_at"),
        ev.REVISIT_RECORDED: ("revisit_id",),
    }[event_type]
    parts = [data["case_id"]] + [_text(data[name]) for name in natural]
    return ":".join([event_type] + parts)


def _text(value):
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def customer_key(contact):
    """A digest of who the customer is (member number, else phone, else e-mail): repeat
    problems are found by it without the read model holding personal data."""
    identity = contact.get("member_id") or contact.get("phone") or contact.get("email")
    return hashlib.sha256(identity.encode()).hexdigest()[:24] if identity else None


def china_day(moment):
    return moment.astimezone(CHINA).date()


def period_key(grain, day):
    return day.isoformat() if grain == DAY else f"{day:%Y-%m}"


def bucket_id(level, unit, grain, day):
    return f"{level}:{unit}:{grain}:{period_key(grain, day)}"


def shard(scope, grain, period):
    """Which documents one range query scans: a unit's month buckets, or its day buckets
    of one month (so a query touches at most a month of days, however old the data)."""
    return f"{scope}:{grain}" + (f":{period[:7]}" if grain == DAY else "")


def bucket_fields(bucket):
    """What a bucket document is found by: its shard and period."""
    level, unit, grain, period = bucket.split(":")
    return {"shard": shard(f"{level}:{unit}", grain, period), "period": period}


def safe_key(name):
    """A MongoDB field name: no dots, no leading $."""
    return str(name).replace(".", "_").replace("$", "_")


def _clock_outcome(met, on_time, breached):
    """met on time / met late / overdue (unmet and breached) / not yet counted."""
    if met:
        return "on_time" if on_time else "late"
    return "overdue" if breached else None


def case_metrics(row):
    """The counters one case adds under its category: Counter{metric: n}."""
    metrics = Counter(cases=1)
    breached = {b["clock"] for b in row.get("breaches", [])}
    resolved = bool(row.get("resolved_at")) and row.get("status") != CaseStatus.REOPENED.value
    outcomes = {
        ClockName.FIRST_RESPONSE.value: _clock_outcome(
            bool(row.get("first_responded_at")), row.get("first_response_on_time"), ClockName.FIRST_RESPONSE.value in breached),
        ClockName.RESOLUTION.value: _clock_outcome(
            resolved, row.get("resolution_on_time"), ClockName.RESOLUTION.value in breached),
        ClockName.REPORT.value: _clock_outcome(
            row.get("report_on_time") is not None, row.get("report_on_time"), ClockName.REPORT.value in breached),
    }
    for clock, outcome in outcomes.items():
        if outcome:
            metrics[f"{clock}:{outcome}"] += 1
    for breach in row.get("breaches", []):
        metrics[f"breach:{breach['clock']}:{breach['rung']}"] += 1
    for revisit in row.get("revisits", []):
        metrics["revisit:satisfied" if revisit["satisfied"] else "revisit:unsatisfied"] += 1
    if row.get("resolved_at"):
        metrics["resolved"] += 1
        option = row.get("refund_option")
        remedy = f"remedy:{RefundOption(option).letter}" if option else f"remedy:{row.get('remedy_type')}"
        metrics[f"{remedy}:count"] += 1
        metrics[f"{remedy}:fen"] += row.get("remedy_amount_fen") or 0
    if row.get("root_cause"):
        metrics[f"root:{row['root_cause']}"] += 1
    if row.get("escalated"):
        metrics["escalated"] += 1
    if row.get("reopened"):
        metrics["reopened"] += 1
    gap = row.get("repeat_gap_days")
    for window in REPEAT_WINDOWS:
        if gap is not None and gap <= window:
            metrics[f"repeat:{window}"] += 1
    # where the case stands now and where it came from (the summary's breakdowns): a
    # status change moves the case from one counter to the other
    metrics[f"status:{row.get('status') or CaseStatus.NEW.value}"] += 1
    metrics[f"channel:{row.get('channel') or 'unknown'}"] += 1
    return metrics


NO_MODEL = "-"  # the model-version key of corrections to cases no model classified


def version_key(version):
    """A model version as a field name, reversibly (versions may hold dots)."""
    if version is None:
        return NO_MODEL
    return str(version).replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def version_of(key):
    if key == NO_MODEL:
        return None
    return key.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def model_metrics(row):
    """What a case adds to the classification model's record, per model version: the
    category the model gave it (`classified:<category>`), and each staff correction once
    (by its id) as `corrected:<category it had>:<category it got>`."""
    metrics = {}
    if row.get("model_version"):
        metrics.setdefault(version_key(row["model_version"]), Counter())[
            f"classified:{row.get('model_category') or UNCLASSIFIED}"] += 1
    for fix in {c["correction_id"]: c for c in row.get("corrections", [])}.values():
        metrics.setdefault(version_key(fix.get("model_version")), Counter())[
            f"corrected:{fix.get('previous_category') or UNCLASSIFIED}:{fix['category']}"] += 1
    return metrics


def staff_metrics(row):
    """What a case adds to the staff member who handled it (who resolved it, else its
    latest assignee): seed 000's recognition of good handlers."""
    metrics = Counter(assigned=1)
    if row.get("resolved_at") and row.get("status") != CaseStatus.REOPENED.value:
        metrics["resolved"] += 1
        metrics["resolved_on_time"] += 1 if row.get("resolution_on_time") else 0
    for revisit in row.get("revisits", []):
        metrics["revisit:satisfied" if revisit["satisfied"] else "revisit:unsatisfied"] += 1
    return metrics


def contribution(row):
    """{bucket id: {field path: n}} that the case adds to the buckets; {} until the case
    is known to have been submitted (where and when)."""
    if not row.get("submitted_at") or not row.get("store_id"):
        return {}
    day = china_day(row["submitted_at"])
    category = safe_key(row.get("corrected_category") or row.get("category") or UNCLASSIFIED)
    paths = {f"c.{category}.{metric}": n for metric, n in case_metrics(row).items() if n}
    # staff only in their store's buckets: a brand's would carry every handler of the brand
    staff = {f"s.{safe_key(row['handler_id'])}.{metric}": n
             for metric, n in staff_metrics(row).items() if n} if row.get("handler_id") else {}
    paths.update({f"m.{version}.{metric}": n for version, counters in model_metrics(row).items()
                  for metric, n in counters.items()})
    units = {"store": row["store_id"], "region": row.get("region_id"), "brand": row.get("brand_id")}
    return {bucket_id(level, safe_key(unit), grain, day): {**paths, **(staff if level == "store" else {})}
            for level, unit in units.items() if unit for grain in (DAY, MONTH)}


def programme_contribution(data, region_id, brand_id):
    """What one ended revisit of the programme (seed 002) adds: completed or unreachable
    (never dropped), and of the completed with a score, satisfied (4-5) or not; counted on
    the China day it ended, in its store's, region's and brand's buckets."""
    metrics = Counter({f"p.{data['status']}": 1})
    if data["status"] == "completed" and data.get("score") is not None:
        metrics["p.satisfied" if data["score"] >= SATISFIED_SCORE else "p.unsatisfied"] += 1
    day = china_day(data["completed_at"])
    units = {"store": data["store_id"], "region": region_id, "brand": brand_id}
    return {bucket_id(level, safe_key(unit), grain, day): dict(metrics)
            for level, unit in units.items() if unit for grain in (DAY, MONTH)}


def difference(new, old):
    """new - old, per bucket and path, zeros left out: what to $inc."""
    delta = {}
    for bucket in set(new) | set(old):
        after, before = new.get(bucket, {}), old.get(bucket, {})
        changed = {path: after.get(path, 0) - before.get(path, 0) for path in set(after) | set(before)}
        changed = {path: n for path, n in changed.items() if n}
        if changed:
            delta[bucket] = changed
    return delta


@dataclass(frozen=True)
class Span:
    """Which bucket periods cover the China dates [first, last]: whole months as month
    buckets, the rest as day buckets (at most ~60 days plus the months)."""
    first: date
    last: date

    def periods(self):
        spans, day = [], self.first
        while day <= self.last:
            month_end = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
            if day.day == 1 and month_end <= self.last:
                spans.append((MONTH, day))
                day = month_end + timedelta(days=1)
            else:
                spans.append((DAY, day))
                day += timedelta(days=1)
        return spans

    def bucket_ids(self, level, unit):
        return [bucket_id(level, safe_key(unit), grain, day) for grain, day in self.periods()]

    def segments(self):
        """The periods as runs of one grain (days: within one month): [(grain, first
        period, last period)], at most four: one range query each."""
        runs = []
        for grain, day in self.periods():
            key = period_key(grain, day)
            if runs and runs[-1][0] == grain and (grain == MONTH or runs[-1][2][:7] == key[:7]):
                runs[-1][2] = key
            else:
                runs.append([grain, key, key])
        return [tuple(run) for run in runs]


# -- pending increments: what events add to the buckets, folded in later in batches -------
#
# A handler does not $inc the buckets itself: every case of a store and day shares them,
# so concurrent handlers would write-conflict on them. It keeps what its event adds as one
# pending entry (a list of [bucket, path, n]); a folder sums many entries per bucket and
# applies each touched bucket once.

def entries(delta):
    """{bucket: {path: n}} as [[bucket, path, n]] (sorted, zeros left out): how a pending
    increment is stored (bucket ids and paths hold ':' and '.', unfit for field names)."""
    return [[bucket, path, n] for bucket, paths in sorted(delta.items())
            for path, n in sorted(paths.items()) if n]


def added(*deltas):
    """The sum of several {bucket: {path: n}}, zeros left out."""
    return folded(entries(delta) for delta in deltas)


def folded(pending):
    """What a batch of pending increments (each a list of [bucket, path, n]) adds to the
    buckets: {bucket: {path: n}}, summed, zeros left out: one $inc per touched bucket."""
    total = {}
    for increments in pending:
        for bucket, path, n in increments:
            total.setdefault(bucket, Counter())[path] += n
    summed = {bucket: {path: n for path, n in sorted(paths.items()) if n} for bucket, paths in sorted(total.items())}
    return {bucket: paths for bucket, paths in summed.items() if paths}
