"""The KPIs of the chain's complaint procedure, over read-model rows. Pure."""
from collections import Counter
from dataclasses import dataclass, field

from closeloop_shared.contract import ACTIVE_CASE_STATUSES, CaseStatus
from closeloop_shared.events import SEVERITIES
from services.reporting.facts import REPEAT_WINDOWS, TIMED_CLOCKS

SATISFACTION_TARGET = 0.95
OPEN_STATUSES = tuple(s.value for s in CaseStatus if s in ACTIVE_CASE_STATUSES)
NEW = CaseStatus.NEW.value  # a row that has seen only case_submitted


def _rate(numerator, denominator):
    return round(numerator / denominator, 4) if denominator else None


def _clock(rows, is_met, on_time_field, due_field, now):
    """A clock counts once it has ended: met (on time or late) or overdue unmet."""
    met = [r for r in rows if is_met(r)]
    overdue = [r for r in rows if not is_met(r) and r.get(due_field) and r[due_field] <= now]
    on_time = sum(1 for r in met if r.get(on_time_field))
    counted = len(met) + len(overdue)
    return {"counted": counted, "on_time": on_time, "late_or_overdue": counted - on_time,
            "rate": _rate(on_time, counted)}


def summarize(rows, now):
    rows = list(rows)
    revisits = [v for r in rows for v in r.get("revisits", [])]
    satisfied = sum(1 for v in revisits if v["satisfied"])
    resolved_ever = [r for r in rows if r.get("resolved_at")]
    return {
        "cases": len(rows),
        # a staff correction wins over the category the case was routed with
        "by_category": dict(Counter(r.get("corrected_category") or r.get("category") or "unclassified"
                                    for r in rows)),
        "by_status": dict(Counter(r.get("status", NEW) for r in rows)),
        "by_channel": dict(Counter(r.get("channel", "unknown") for r in rows)),
        # why complaints arose (seed 004's causes; a case has one once it can close)
        "by_root_cause": dict(Counter(r["root_cause"] for r in rows if r.get("root_cause"))),
        # what the remedies of the latest resolutions cost, in fen
        "remedies_fen": sum(r.get("remedy_amount_fen") or 0 for r in rows),
        "open": sum(1 for r in rows if r.get("status", NEW) in OPEN_STATUSES),
        "escalated": sum(1 for r in rows if r.get("escalated")),
        "first_response": _clock(rows, lambda r: r.get("first_responded_at"),
                                 "first_response_on_time", "first_response_due", now),
        # A reopened case is unresolved again, against its re-armed resolution clock.
        "resolution": _clock(rows, lambda r: r.get("resolved_at") and r.get("status") != CaseStatus.REOPENED.value,
                             "resolution_on_time", "resolution_due", now),
        "satisfaction": {"revisits": len(revisits), "satisfied": satisfied,
                         "rate": _rate(satisfied, len(revisits)), "target": SATISFACTION_TARGET},
        "reopened": {"cases": sum(1 for r in rows if r.get("reopened")),
                     "rate": _rate(sum(1 for r in resolved_ever if r.get("reopened")),
                                   len(resolved_ever))},
        "corrections": corrections(rows),
    }


def corrections(rows):
    """How often staff corrected each category, per model version: the cases the version
    classified by category, the corrections of each category (the category a case had
    when corrected), their rate, and what each was corrected to. A correction counts once
    (by its id) however often its event arrived."""
    versions = {}

    def version(name):
        return versions.setdefault(name, {"model_version": name, "classified": Counter(),
                                          "corrected": Counter(), "to": {}})

    for row in rows:
        if row.get("model_version"):
            version(row["model_version"])["classified"][row["model_category"]] += 1
        for fix in {c["correction_id"]: c for c in row.get("corrections", [])}.values():
            counted = version(fix.get("model_version"))
            previous = fix.get("previous_category") or "unclassified"
            counted["corrected"][previous] += 1
            counted["to"].setdefault(previous, Counter())[fix["category"]] += 1
    return [{"model_version": v["model_version"],
             "classified": sum(v["classified"].values()), "corrected": sum(v["corrected"].values()),
             "rate": _rate(sum(v["corrected"].values()), sum(v["classified"].values())),
             "by_category": {category: {
                 "classified": v["classified"][category], "corrected": v["corrected"][category],
                 "rate": _rate(v["corrected"][category], v["classified"][category]),
                 "corrected_to": dict(v["to"].get(category, {}))}
                 for category in sorted(set(v["classified"]) | set(v["corrected"]))}}
            for v in sorted(versions.values(), key=lambda v: v["model_version"] or "")]


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

    def add(self, document):
        for name, into in (("c", self.categories), ("s", self.staff)):
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
