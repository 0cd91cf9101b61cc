"""Customer profiles: what followup knows of a customer to revisit them, read from an
import (CSV or JSON rows) or from other systems' events. Pure: no nameko, no pymongo.

Phones are normalised to E.164 (mainland China by default). Special needs (allergies,
pregnancy, postpartum status) are health data under PIPL: only callers holding
Permission.HEALTH_DATA (the store's own roles, closeloop_shared.access) see them;
everyone else sees that there are some.
Consent to be contacted is required for any programme; its withdrawal stops them all."""
import csv
import io
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import Enum

from closeloop_shared.access import contact_view
from closeloop_shared.contacts import e164  # ValueError if not a valid number
from closeloop_shared.contract import CUSTOMER_NOTIFY_CHANNELS, Permission

MAX_IMPORT_ROWS = 5000


class SpecialNeed(str, Enum):
    ALLERGY = "allergy"
    PREGNANT = "pregnant"
    POSTPARTUM = "postpartum"
    OTHER = "other"


@dataclass(frozen=True)
class ContactHours:
    """Store-local hours the customer may be called, e.g. 10-12 and 14-20."""
    start_hour: int = 10
    end_hour: int = 20


@dataclass(frozen=True)
class Profile:
    member_id: str
    name: str
    phone: str | None                  # E.164
    home_store_id: str
    preferred_channel: str | None = None
    contact_hours: ContactHours = ContactHours()
    special_needs: tuple = ()          # SpecialNeed values: health data
    special_needs_note: str = ""
    consent: bool = False
    consent_changed_at: datetime | None = None
    wechat_openid: str | None = None
    email: str | None = None

    def contact(self):
        """The customer as events carry them (closeloop_shared.events.Contact)."""
        contact = {"name": self.name, "phone": self.phone, "email": self.email, "member_id": self.member_id}
        if self.wechat_openid:
            contact["wechat_openid"] = self.wechat_openid
        if self.preferred_channel:
            contact["preferred_channel"] = self.preferred_channel
        return contact

    def to_document(self):
        document = asdict(self)
        document["special_needs"] = list(self.special_needs)
        return document

    @classmethod
    def from_document(cls, document):
        fields_ = {k: v for k, v in document.items() if k in cls.__dataclass_fields__}
        fields_["contact_hours"] = ContactHours(**(document.get("contact_hours") or {}))
        fields_["special_needs"] = tuple(document.get("special_needs") or ())
        return cls(**fields_)


class RowRejected(ValueError):
    def __init__(self, fields_):
        super().__init__(fields_)
        self.fields = fields_


def _hours(value):
    """"10-20" or {"start_hour": 10, "end_hour": 20}."""
    if value in (None, ""):
        return ContactHours()
    if isinstance(value, dict):
        start, end = value.get("start_hour"), value.get("end_hour")
    else:
        start, _, end = str(value).partition("-")
    start, end = int(start), int(end)
    if not 0 <= start < end <= 24:
        raise ValueError("hours must be start-end within 0-24, start before end")
    return ContactHours(start, end)


def _needs(value):
    if value in (None, ""):
        return ()
    items = value if isinstance(value, list) else str(value).replace(";", ",").split(",")
    return tuple(sorted({SpecialNeed(str(item).strip()).value for item in items if str(item).strip()}))


def _consent(value):
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("1", "true", "yes", "y", "是"):
        return True
    if text in ("", "0", "false", "no", "n", "否"):
        return False
    raise ValueError("consent must be yes or no")


def profile_from_row(row, known_stores, now):
    """A Profile from one import row (a dict of strings, or JSON values); RowRejected
    with {field: [message]} for every field at fault."""
    errors, values = {}, {}

    def take(name, parse, required=False):
        raw = row.get(name)
        if raw in (None, "") and required:
            errors[name] = ["required"]
            return
        try:
            values[name] = parse(raw)
        except (ValueError, TypeError) as exc:
            errors[name] = [str(exc)]

    take("member_id", lambda v: str(v).strip(), required=True)
    take("name", lambda v: str(v).strip(), required=True)
    take("phone", lambda v: e164(v) if v not in (None, "") else None)
    take("home_store_id", _store(known_stores), required=True)
    take("preferred_channel", _channel)
    take("contact_hours", _hours)
    take("special_needs", _needs)
    take("consent", _consent)
    if errors:
        raise RowRejected(errors)
    if values["phone"] is None and values.get("preferred_channel") in (None, "sms"):
        raise RowRejected({"phone": ["required unless another channel is preferred"]})
    return Profile(member_id=values["member_id"], name=values["name"], phone=values["phone"],
                   home_store_id=values["home_store_id"], preferred_channel=values.get("preferred_channel"),
                   contact_hours=values["contact_hours"], special_needs=values["special_needs"],
                   special_needs_note=str(row.get("special_needs_note") or "")[:500],
                   consent=values["consent"], consent_changed_at=now,
                   wechat_openid=row.get("wechat_openid") or None, email=row.get("email") or None)


def _store(known_stores):
    def parse(value):
        store_id = str(value).strip()
        if store_id not in known_stores:
            raise ValueError(f"unknown store {store_id}")
        return store_id
    return parse


def _channel(value):
    if value in (None, ""):
        return None
    if value not in CUSTOMER_NOTIFY_CHANNELS:
        raise ValueError(f"one of {', '.join(CUSTOMER_NOTIFY_CHANNELS)}")
    return value


@dataclass
class ImportReport:
    accepted: list = field(default_factory=list)  # Profiles
    rejected: list = field(default_factory=list)  # {"row": n (1-based, after the header), "fields": {...}}

    def summary(self):
        return {"accepted": len(self.accepted), "rejected": self.rejected}


def read_csv(body):
    """Rows of a CSV import (UTF-8, a header line naming the columns); ValueError if unreadable."""
    try:
        return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"not a UTF-8 CSV file: {exc}") from None


def import_rows(rows, known_stores, now):
    """Every row checked; the good ones become profiles, the others are reported by row
    number with the fields at fault. A member id given twice: the later row is rejected."""
    report, seen = ImportReport(), set()
    for number, row in enumerate(rows, start=1):
        try:
            profile = profile_from_row(row, known_stores, now)
        except RowRejected as rejected:
            report.rejected.append({"row": number, "fields": rejected.fields})
            continue
        if profile.member_id in seen:
            report.rejected.append({"row": number, "fields": {"member_id": ["given twice in this import"]}})
            continue
        seen.add(profile.member_id)
        report.accepted.append(profile)
    return report


def withdraw_consent(profile, now):
    return replace(profile, consent=False, consent_changed_at=now)


def view(profile, principal):
    """A profile as `principal` may see it: contact masked for roles that do not call
    customers, special needs only with Permission.HEALTH_DATA (else just whether any)."""
    shown = profile.to_document()
    shown.update(contact_view({"phone": profile.phone, "email": profile.email}, principal))
    if not principal.can(Permission.HEALTH_DATA):
        shown["has_special_needs"] = bool(profile.special_needs)
        shown.pop("special_needs")
        shown.pop("special_needs_note")
    return shown
