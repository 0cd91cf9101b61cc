"""The KPIs of the chain's complaint procedure, over read-model rows. Pure."""
from collections import Counter

from closeloop_shared.contract import ACTIVE_CASE_STATUSES, CaseStatus

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
