"""Reports over the pre-aggregated buckets: which buckets a request needs (by its scope,
grouping and period), the KPIs they sum to, trends, and the CSV form. Pure but for
`report`, which reads the buckets through the repository it is given."""
import csv
import io
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from closeloop_shared.clock import CHINA
from services.reporting import kpis
from services.reporting.facts import Span, safe_key


class GroupBy(str, Enum):
    NONE = "none"
    STORE = "store"
    REGION = "region"
    BRAND = "brand"
    CATEGORY = "category"
    STAFF = "staff"


UNIT_LEVELS = {GroupBy.STORE: "store", GroupBy.REGION: "region", GroupBy.BRAND: "brand"}


@dataclass(frozen=True)
class Plan:
    level: str    # which buckets: store, region or brand
    groups: dict  # group name -> unit ids at that level


def span_of(start, end):
    """The China days of [start, end) (a report counts whole days)."""
    return Span(start.astimezone(CHINA).date(), (end - timedelta(microseconds=1)).astimezone(CHINA).date())


def _units(organisation, scope_stores):
    """Every store, region and brand whose stores all lie in the scope (None: all)."""
    def inside(stores):
        return bool(stores) and (scope_stores is None or stores <= scope_stores)
    stores = set(organisation.stores) if scope_stores is None else set(scope_stores)
    return {"store": {s: {s} for s in sorted(stores)},
            "region": {r: organisation.stores_of_region(r) for r in sorted(organisation.regions)
                       if inside(organisation.stores_of_region(r))},
            "brand": {b: organisation.stores_of_brand(b) for b in sorted(organisation.brands)
                      if inside(organisation.stores_of_brand(b))}}


def plan(group_by, organisation, scope_stores, store=None):
    """The buckets' level and units per group. Totals read the coarsest level that covers
    the scope exactly (a general manager's year is a dozen brand documents)."""
    if store is not None:
        scope_stores = frozenset({store})
    units = _units(organisation, scope_stores)
    if group_by in UNIT_LEVELS:
        level = UNIT_LEVELS[group_by]
        return Plan(level, {unit: [unit] for unit in units[level]})
    if group_by is GroupBy.STAFF:  # handlers are counted in their stores' buckets only
        return Plan("store", {"all": sorted(units["store"])})
    wanted = set(units["store"])
    for level in ("brand", "region"):
        if units[level] and set().union(*units[level].values()) == wanted:
            return Plan(level, {"all": sorted(units[level])})
    return Plan("store", {"all": sorted(units["store"])})


def report(repository, group_by, the_plan, span):
    """The KPIs of each group over the span, with the previous span of the same length
    (for the repeat-problem change). One query fetches every bucket it needs."""
    length = span.last - span.first + timedelta(days=1)
    previous = Span(span.first - length, span.first - timedelta(days=1))
    wanted = {(name, which): [bucket for unit in unit_ids for bucket in s.bucket_ids(the_plan.level, unit)]
              for name, unit_ids in the_plan.groups.items() for which, s in (("now", span), ("before", previous))}
    scopes = {f"{the_plan.level}:{safe_key(unit)}" for unit_ids in the_plan.groups.values() for unit in unit_ids}
    found = {document["_id"]: document
             for document in repository.bucket_documents(scopes, previous.segments() + span.segments())}
    summed = {key: kpis.totals(found[bucket] for bucket in ids if bucket in found) for key, ids in wanted.items()}
    groups = {}
    for name in the_plan.groups:
        now, before = summed[(name, "now")], summed[(name, "before")]
        if group_by is GroupBy.CATEGORY:
            for category, counters in sorted(now.categories.items()):
                if not +counters:  # every case it had moved to another category
                    continue
                groups[category] = kpis.indicators(counters, before.categories.get(category, Counter()))
        elif group_by is GroupBy.STAFF:
            groups.update({staff: kpis.staff_indicators(counters)
                           for staff, counters in sorted(now.staff.items()) if +counters})
        else:
            groups[name] = {**kpis.indicators(now.overall(), before.overall()),
                            "revisit_programme": kpis.programme(now.programme)}
    return {"from": span.first.isoformat(), "to": span.last.isoformat(), "by": group_by.value,
            "previous": {"from": previous.first.isoformat(), "to": previous.last.isoformat()},
            "groups": groups}


def summary(repository, the_plan, span):
    """GET /v1/reports/summary over the span: the plan's buckets summed (kpis.summary),
    a few documents per unit whatever the number of cases."""
    scopes = {f"{the_plan.level}:{safe_key(unit)}" for units in the_plan.groups.values() for unit in units}
    return {"from": span.first.isoformat(), "to": span.last.isoformat(),
            **kpis.summary(kpis.totals(repository.bucket_documents(scopes, span.segments())))}


CSV_COLUMNS = ("group", "cases", "resolved", "first_response_on_time_rate", "resolution_on_time_rate",
               "report_on_time_rate", "overdue", "breaches", "satisfaction_rate", "revisits",
               "repeat_30_rate", "repeat_90_rate", "repeat_90_change", "remedies_fen", "top_root_cause")


def csv_text(body):
    """One line per group (staff groups: their handling columns only)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for name, group in body["groups"].items():
        if "on_time" not in group:  # a staff member
            writer.writerow([name, "", group["resolved"], "", group["on_time_rate"], "", "", "",
                             group["satisfaction"]["rate"], group["satisfaction"]["revisits"], "", "", "", "", ""])
            continue
        on_time = group["on_time"]
        writer.writerow([
            name, group["cases"], group["resolved"],
            on_time["first_response"]["rate"], on_time["resolution"]["rate"], on_time["report"]["rate"],
            sum(clock["overdue"] for clock in on_time.values()),
            sum(clock["total"] for clock in group["breaches"].values()),
            group["satisfaction"]["rate"], group["satisfaction"]["revisits"],
            group["repeat"]["30"]["rate"], group["repeat"]["90"]["rate"], group["repeat"]["90"]["change"],
            sum(remedy["fen"] for remedy in group["remedies"].values()),
            group["root_causes"][0]["root_cause"] if group["root_causes"] else ""])
    return out.getvalue()


TREND_FIELDS = ("cases", "first_response_rate", "resolution_rate", "satisfaction_rate", "repeat_30_rate")


def headline(indicators):
    """The figures a trend compares."""
    return {"cases": indicators["cases"],
            "first_response_rate": indicators["on_time"]["first_response"]["rate"],
            "resolution_rate": indicators["on_time"]["resolution"]["rate"],
            "satisfaction_rate": indicators["satisfaction"]["rate"],
            "repeat_30_rate": indicators["repeat"]["30"]["rate"]}


def change(now, before):
    """Per figure: now, before and the difference (None where either is unknown)."""
    return {name: {"now": now[name], "before": before[name],
                   "change": None if now[name] is None or before[name] is None else round(now[name] - before[name], 4)}
            for name in TREND_FIELDS}


def week_of(day):
    monday = day - timedelta(days=day.weekday())
    return Span(monday, monday + timedelta(days=6))


def month_of(day):
    first = day.replace(day=1)
    return Span(first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1))


def weekly(repository, the_plan, organisation, day):
    """Seed 000's weekly summary of the week holding `day`: KPIs by category, a Pareto of
    root causes per store and per region, week-over-week and month-over-month trends."""
    week, month = week_of(day), month_of(day)
    last_week = week_of(week.first - timedelta(days=7))
    last_month = month_of(month.first - timedelta(days=1))
    by_category = report(repository, GroupBy.CATEGORY, the_plan, week)
    stores = sorted({store for unit in the_plan.groups["all"]
                     for store in ({unit} if the_plan.level == "store" else _stores_of(organisation, the_plan.level, unit))})
    per_store = report(repository, GroupBy.STORE, Plan("store", {s: [s] for s in stores}), week)
    regions = sorted({organisation.stores[s].region_id for s in stores if s in organisation.stores})
    covered = {r for r in regions if organisation.stores_of_region(r) <= set(stores)}
    per_region = report(repository, GroupBy.REGION, Plan("region", {r: [r] for r in sorted(covered)}), week)

    def total(span):
        return headline(report(repository, GroupBy.NONE, the_plan, span)["groups"]["all"])
    return {"week": {"from": week.first.isoformat(), "to": week.last.isoformat()},
            "categories": by_category["groups"],
            "pareto_by_store": {s: g["root_causes"] for s, g in per_store["groups"].items() if g["cases"]},
            "pareto_by_region": {r: g["root_causes"] for r, g in per_region["groups"].items() if g["cases"]},
            "week_over_week": change(total(week), total(last_week)),
            "month_over_month": {"month": f"{month.first:%Y-%m}", **change(total(month), total(last_month))}}


def _stores_of(organisation, level, unit):
    return organisation.stores_of_region(unit) if level == "region" else organisation.stores_of_brand(unit)
