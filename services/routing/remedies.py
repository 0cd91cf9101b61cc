"""The remedy ledger: what a case offers the customer (apology, voucher, compensation,
refund options A-D), proposed, then approved within a role's limit or rejected.
Amounts are integer fen, never floats. Pure: no nameko, no pymongo.

Approval: a proposal within the proposer's own limit (config REMEDY_APPROVAL_LIMITS_FEN)
is approved at once; above it, it waits for the lowest person on the case's ladder whose
limit covers it. A refund that returns money (options B-D) also needs a role allowed to
refund (Permission.CASE_REFUND). A customer who already received compensation or refunds
repeatedly (any store) is flagged to the approver, and such a proposal is never approved
by its own proposer."""
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from closeloop_shared.access import ROLE_PERMISSIONS
from closeloop_shared.contract import Permission, RefundOption, RemedyStatus, RemedyType, Role
from services.routing.refusals import ActionRefused

REPEAT_CUSTOMER = "repeat_customer"  # the flag an approver sees
# What counts toward a customer's repeat flag: money handed back or out.
COUNTS_AS_RECEIVED = (RemedyType.COMPENSATION, RemedyType.REFUND)


@dataclass(frozen=True)
class Remedy:
    remedy_id: str
    type: RemedyType
    refund_option: RefundOption | None
    amount_fen: int
    round: int                      # the resolution round it is for (1 for the first)
    status: RemedyStatus
    proposed_by: str
    proposed_at: datetime
    approver: dict | None = None    # the staff member who must approve it, while pending
    note: str = ""                  # the proposer's why
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""
    flags: tuple = ()
    repeat: dict | None = None      # {"count", "stores"} behind the repeat_customer flag

    @property
    def costs(self):
        return self.amount_fen > 0

    @property
    def returns_money(self):
        return self.type is RemedyType.REFUND and self.refund_option.refunds

    @property
    def continue_treatment(self):
        return self.refund_option.continues_treatment if self.refund_option else True

    def to_doc(self):
        return {"remedy_id": self.remedy_id, "type": self.type.value,
                "refund_option": self.refund_option.value if self.refund_option else None,
                "amount_fen": self.amount_fen, "round": self.round, "status": self.status.value,
                "proposed_by": self.proposed_by, "proposed_at": self.proposed_at,
                "approver": self.approver,
                "approver_role": self.approver["role"] if self.approver else None, "note": self.note,
                "decided_by": self.decided_by, "decided_at": self.decided_at,
                "reason": self.reason, "flags": list(self.flags), "repeat": self.repeat,
                "continue_treatment": self.continue_treatment}

    @classmethod
    def from_doc(cls, doc):
        return cls(remedy_id=doc["remedy_id"], type=RemedyType(doc["type"]),
                   refund_option=RefundOption(doc["refund_option"]) if doc.get("refund_option") else None,
                   amount_fen=doc["amount_fen"], round=doc["round"], status=RemedyStatus(doc["status"]),
                   proposed_by=doc["proposed_by"], proposed_at=doc["proposed_at"],
                   approver=doc.get("approver"), note=doc.get("note") or "", decided_by=doc.get("decided_by"),
                   decided_at=doc.get("decided_at"), reason=doc.get("reason") or "",
                   flags=tuple(doc.get("flags") or ()), repeat=doc.get("repeat"))


@dataclass(frozen=True)
class Limits:
    """The most each role may approve, in fen: None is no limit, a role not listed
    approves nothing that costs money."""
    by_role: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, raw):
        """From the setting: a mapping, or its JSON text (the environment's form)."""
        if isinstance(raw, str):
            raw = json.loads(raw)
        return cls({Role(role): (None if limit is None else int(limit)) for role, limit in (raw or {}).items()})

    def covers(self, role, remedy):
        if not remedy.costs and not remedy.returns_money:  # an apology, option A: anyone
            return True
        if role is None or (remedy.returns_money and Permission.CASE_REFUND not in ROLE_PERMISSIONS[role]):
            return False
        if role not in self.by_role:
            return False
        limit = self.by_role[role]
        return limit is None or remedy.amount_fen <= limit

    def describe(self, role):
        if role not in self.by_role:
            return "0"
        limit = self.by_role[role]
        return "unlimited" if limit is None else str(limit)


def check(kind, option, amount_fen):
    """Refuses (422) a remedy whose parts do not fit together; returns (type, option, amount)."""
    kind = RemedyType(kind)
    option = RefundOption(option) if option else None
    amount_fen = amount_fen or 0
    if kind is RemedyType.REFUND:
        if option is None:
            raise ActionRefused("validation_failed", "a refund needs refund_option (A-D)", "refund_option")
        if option.refunds and amount_fen <= 0:
            raise ActionRefused("validation_failed", f"refund option {option.letter} needs a positive amount_fen",
                                "amount_fen")
        if not option.refunds and amount_fen:
            raise ActionRefused("validation_failed", "option A (none_continue) refunds nothing", "amount_fen")
    elif option is not None:
        raise ActionRefused("validation_failed", "refund_option applies to refunds only", "refund_option")
    elif kind is RemedyType.APOLOGY and amount_fen:
        raise ActionRefused("validation_failed", "an apology carries no amount", "amount_fen")
    elif kind in (RemedyType.VOUCHER, RemedyType.COMPENSATION) and amount_fen <= 0:
        raise ActionRefused("validation_failed", f"a {kind.value} needs a positive amount_fen", "amount_fen")
    return kind, option, amount_fen


def repeat_of(previous, threshold):
    """The repeat flag's details if the customer already received `threshold` or more
    compensations or refunds: `previous` is [(store_id, remedy_doc)] of their other cases."""
    received = [(store, doc) for store, doc in previous
                if RemedyType(doc["type"]) in COUNTS_AS_RECEIVED and doc["status"] == RemedyStatus.APPROVED.value
                and doc["amount_fen"] > 0]
    if len(received) < threshold:
        return None
    return {"count": len(received), "stores": sorted({store for store, _ in received}),
            "amount_fen": sum(doc["amount_fen"] for _, doc in received)}


def approver_for(ladder, remedy, limits, proposer):
    """The lowest person on the case's ladder ([{staff_id, role, ...}] from store staff
    up) whose limit covers the remedy, never the proposer; None if nobody's does."""
    for person in ladder:
        if person["staff_id"] != proposer and limits.covers(Role(person["role"]), remedy):
            return person
    return None


def propose(kind, option, amount_fen, round_, proposer, proposer_role, ladder, limits, repeat, now,
            note="", remedy_id=None):
    """A new ledger entry: approved at once within the proposer's limit (unless the
    customer is flagged), else waiting for the approver the ladder names."""
    kind, option, amount_fen = check(kind, option, amount_fen)
    remedy = Remedy(remedy_id=remedy_id or uuid.uuid4().hex, type=kind, refund_option=option,
                    amount_fen=amount_fen, round=round_, status=RemedyStatus.PENDING_APPROVAL,
                    proposed_by=proposer, proposed_at=now, note=note,
                    flags=(REPEAT_CUSTOMER,) if repeat else (), repeat=repeat)
    if limits.covers(proposer_role, remedy) and not (repeat and remedy.costs):
        return replace(remedy, status=RemedyStatus.APPROVED, decided_by=proposer, decided_at=now,
                       reason="within the proposer's approval limit")
    approver = approver_for(ladder, remedy, limits, proposer)
    if approver is None:
        raise ActionRefused("no_approver", "nobody on this store's ladder may approve this remedy",
                            "amount_fen")
    return replace(remedy, approver=approver)


def decide(remedy, approve, decider, decider_role, limits, reason, now):
    """The approver's decision on a proposed remedy. Refuses (403-worthy `forbidden`)
    a decider whose limit does not cover it, or the proposer of a flagged proposal."""
    if remedy.status is not RemedyStatus.PENDING_APPROVAL:
        raise ActionRefused("remedy_decided", f"remedy {remedy.remedy_id} is already {remedy.status.value}")
    if approve and not limits.covers(decider_role, remedy):
        raise ActionRefused("above_approval_limit",
                            f"{remedy.amount_fen} fen is above your approval limit "
                            f"({limits.describe(decider_role)} fen)")
    if approve and decider == remedy.proposed_by:
        raise ActionRefused("own_proposal", "a proposal waiting for approval is approved by someone else")
    status = RemedyStatus.APPROVED if approve else RemedyStatus.REJECTED
    return replace(remedy, status=status, decided_by=decider, decided_at=now, reason=reason, approver=None)


def for_resolution(ledger, round_, remedy_id=None):
    """The remedy a resolution of `round_` gives: the named one, else the newest
    approved one of the round; None means an apology (it needs no ledger entry).
    Refuses while a proposal of the round waits, or if the named one is not approved."""
    of_round = [r for r in ledger if r.round == round_]
    if remedy_id is not None:
        named = next((r for r in ledger if r.remedy_id == remedy_id), None)
        if named is None:
            raise ActionRefused("validation_failed", f"no remedy {remedy_id} on this case", "remedy_id")
        if named.status is not RemedyStatus.APPROVED:
            raise ActionRefused("remedy_not_approved", f"remedy {remedy_id} is {named.status.value}")
        return named
    if any(r.status is RemedyStatus.PENDING_APPROVAL for r in of_round):
        raise ActionRefused("remedy_pending", "a proposed remedy waits for its approver: approve or reject it first")
    approved = [r for r in of_round if r.status is RemedyStatus.APPROVED]
    return approved[-1] if approved else None
