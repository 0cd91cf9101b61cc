"""The KPIs of the chain's complaint procedure, over summed pre-aggregated buckets
(services/reporting/facts.py), and the live SLA risk over the open cases' rows. Pure."""
from collections import Counter
from dataclasses import dataclass, field

from closeloop_shared.contract import ACTIVE_CASE_STATUSES, CaseStatus
from closeloop_shared.events import SEVERITIES
from services.reporting.facts import REPEAT_WINDOWS, TIMED_CLOCKS, version_of

SATISFACTION_TARGET = 0.95
OPEN_STATUSES = tuple(s.value for s in CaseStatus if s in ACTIVE_CASE_STATUSES)


def _rate(numerator, denominator):
    return round(numerator / denominator, 4) if denominator else None


# -- over the pre-aggregated buckets (services/reporting/facts.py) ------------------------

REPEAT_TARGET_CHANGE = -0.30  # seed 001: repeat problems down 30%
REVISIT_SATISFACTION_TARGET = 0.90  # seed 001: revisit satisfaction >= 90%
ON_TIME_TARGET = 0.95  # seed 001: complaints handled on time >= 95%


@dataclass
class Totals:
    """Summed bucket counters: per category, and per handling staff member."""
    categories: dict = field(default_factory=dict)  # category -> Counter{metric: n}
    staff: dict = field(default_factory=dict)       # staff id -> Counter{metric: n}
    programme: Counter = field(default_factory=Counter)  # the revisit programme's outcomes
    models: dict = field(default_factory=dict)      # model version key -> Counter{metric: n}

    def add(self, document):
        for name, into in (("c", self.categories), ("s", self.staff), ("m", self.models)):
            for key, counters in document.get(name, {}).items():
                into.setdefault(key, Counter()).update(counters)
        self.programme.update(document.get("p", {}))
        return self

    def overall(self):
        return sum(self.categories.values(), Counter())


def totals(documents):
    summed = Totals()
    for document in documents:
        summed.add(document)
    return summed


CLOCK_OUTCOMES = ("on_time", "late", "overdue")


def clock_kpi(counters, clock):
    """A clock counts once it has ended: met on time, met late, or breached unmet
    (overdue: an unanswered breached case counts late, never drops out)."""
    on_time, late, overdue = (counters[f"{clock}:{o}"] for o in CLOCK_OUTCOMES)
    counted = on_time + late + overdue
    return {"counted": counted, "on_time": on_time, "late": late, "overdue": overdue,
            "rate": _rate(on_time, counted), "target": ON_TIME_TARGET}


def _by_prefix(counters, prefix):
    return {name[len(prefix):]: n for name, n in counters.items() if name.startswith(prefix) and n}


def breaches(counters):
    found = {}
    for name, n in _by_prefix(counters, "breach:").items():
        clock, rung = name.rsplit(":", 1)
        entry = found.setdefault(clock, {"total": 0, "by_rung": {}})
        entry["total"] += n
        entry["by_rung"][rung] = entry["by_rung"].get(rung, 0) + n
    return found


def satisfaction(counters):
    satisfied, unsatisfied = counters["revisit:satisfied"], counters["revisit:unsatisfied"]
    reached = satisfied + unsatisfied
    return {"revisits": reached, "satisfied": satisfied, "unsatisfied": unsatisfied,
            "rate": _rate(satisfied, reached), "target": REVISIT_SATISFACTION_TARGET}


def repeat(counters, previous=None):
    """Cases whose customer complained of the same category within N days before, over
    all cases; with the change against the previous period (None without one)."""
    result = {}
    for window in REPEAT_WINDOWS:
        rate = _rate(counters[f"repeat:{window}"], counters["cases"])
        before = None if previous is None else _rate(previous[f"repeat:{window}"], previous["cases"])
        result[str(window)] = {
            "cases": counters[f"repeat:{window}"], "rate": rate, "previous_rate": before,
            "change": round((rate - before) / before, 4) if rate is not None and before else None,
            "target_change": REPEAT_TARGET_CHANGE}
    return result


def remedies(counters):
    found = {}
    for name, n in _by_prefix(counters, "remedy:").items():
        option, unit = name.rsplit(":", 1)
        found.setdefault(option, {"count": 0, "fen": 0})[unit] = n
    return dict(sorted(found.items()))


def pareto(counters):
    """Root causes by count, largest first, with each one's share and the cumulative share
    (the few causes behind most complaints)."""
    causes = sorted(_by_prefix(counters, "root:").items(), key=lambda item: (-item[1], item[0]))
    whole, running, rows = sum(n for _, n in causes), 0, []
    for cause, n in causes:
        running += n
        rows.append({"root_cause": cause, "cases": n, "share": _rate(n, whole),
                     "cumulative": _rate(running, whole)})
    return rows


def indicators(counters, previous=None):
    """Every KPI of one set of summed counters (one store, region, category...)."""
    return {
        "cases": counters["cases"], "resolved": counters["resolved"],
        "escalated": counters["escalated"], "reopened": counters["reopened"],
        "on_time": {clock: clock_kpi(counters, clock) for clock in TIMED_CLOCKS},
        "breaches": breaches(counters),
        "satisfaction": satisfaction(counters),
        "repeat": repeat(counters, previous),
        "remedies": remedies(counters),
        "root_causes": pareto(counters),
    }


def programme(counters):
    """The revisit programme (seed 002): completion over every ended revisit, unreachable
    customers counted apart (never dropped), satisfaction over the scored ones."""
    completed, unreachable = counters["completed"], counters["unreachable"]
    satisfied, unsatisfied = counters["satisfied"], counters["unsatisfied"]
    return {"ended": completed + unreachable, "completed": completed, "unreachable": unreachable,
            "completion_rate": _rate(completed, completed + unreachable),
            "scored": satisfied + unsatisfied, "satisfied": satisfied,
            "satisfaction_rate": _rate(satisfied, satisfied + unsatisfied), "target": REVISIT_SATISFACTION_TARGET}


def staff_indicators(counters):
    """Seed 000's recognition of good handlers: what each handled, on time, and how
    satisfied their customers were."""
    return {"assigned": counters["assigned"], "resolved": counters["resolved"],
            "resolved_on_time": counters["resolved_on_time"],
            "on_time_rate": _rate(counters["resolved_on_time"], counters["resolved"]),
            "satisfaction": satisfaction(counters)}


def summary(totals):
    """GET /v1/reports/summary's figures, from summed buckets (its contract predates the
    buckets; the clocks count as in clock_kpi: met, or breached unmet)."""
    counters = totals.overall()

    def clock(name):
        kpi = clock_kpi(counters, name)
        return {"counted": kpi["counted"], "on_time": kpi["on_time"],
                "late_or_overdue": kpi["late"] + kpi["overdue"], "rate": kpi["rate"]}
    revisits = counters["revisit:satisfied"] + counters["revisit:unsatisfied"]
    by_status = _by_prefix(counters, "status:")
    return {
        "cases": counters["cases"],
        "by_category": {category: c["cases"] for category, c in sorted(totals.categories.items()) if c["cases"]},
        "by_status": by_status,
        "by_channel": _by_prefix(counters, "channel:"),
        "by_root_cause": _by_prefix(counters, "root:"),
        "remedies_fen": sum(n for name, n in counters.items() if name.startswith("remedy:") and name.endswith(":fen")),
        "open": sum(n for status, n in by_status.items() if status in OPEN_STATUSES),
        "escalated": counters["escalated"],
        "first_response": clock("first_response"),
        "resolution": clock("resolution"),
        "satisfaction": {"revisits": revisits, "satisfied": counters["revisit:satisfied"],
                         "rate": _rate(counters["revisit:satisfied"], revisits), "target": SATISFACTION_TARGET},
        "reopened": {"cases": counters["reopened"], "rate": _rate(counters["reopened"], counters["resolved"])},
        "corrections": model_corrections(totals.models),
    }


def model_corrections(models):
    """Per model version: the cases it classified by category, how many staff corrected
    (by the category the case had then), their rate, and to which category."""
    found = []
    for key, counters in sorted(models.items(), key=lambda item: version_of(item[0]) or ""):
        classified, corrected, to = Counter(), Counter(), {}
        for name, n in counters.items():
            if not n:
                continue
            kind, _, rest = name.partition(":")
            if kind == "classified":
                classified[rest] += n
            else:
                previous, _, category = rest.partition(":")
                corrected[previous] += n
                to.setdefault(previous, Counter())[category] += n
        if not +classified and not +corrected:
            continue
        found.append({
            "model_version": version_of(key), "classified": sum(classified.values()),
            "corrected": sum(corrected.values()), "rate": _rate(sum(corrected.values()), sum(classified.values())),
            "by_category": {category: {
                "classified": classified[category], "corrected": corrected[category],
                "rate": _rate(corrected[category], classified[category]),
                "corrected_to": dict(to.get(category, {}))}
                for category in sorted(set(classified) | set(corrected))}})
    return found


# -- live SLA risk (the Prometheus gauges) -------------------------------------------------

LIVE_CLOCKS = (("first_response", "first_responded_at", "first_response_due"),
               ("resolution", "resolved_at", "resolution_due"))


def sla_risk(rows, now, lead):
    """Open cases per (state, clock, severity), every combination present (zero if none):
    breached_open (the clock ran out and is still unmet) and at_risk (unmet, not yet
    breached, due within `lead`)."""
    counts = Counter({(state, clock, severity): 0 for state in ("breached_open", "at_risk")
                      for clock, _, _ in LIVE_CLOCKS for severity in SEVERITIES})
    for row in rows:
        breached = {b["clock"] for b in row.get("breaches", [])}
        severity = row.get("severity")
        if severity not in SEVERITIES:
            continue
        for clock, met_field, due_field in LIVE_CLOCKS:
            met = row.get(met_field) and not (clock == "resolution" and row.get("status") == CaseStatus.REOPENED.value)
            if met:
                continue
            if clock in breached:
                counts[("breached_open", clock, severity)] += 1
            elif row.get(due_field) and now < row[due_field] <= now + lead:
                counts[("at_risk", clock, severity)] += 1
    return counts
