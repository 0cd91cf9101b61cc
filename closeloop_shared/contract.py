"""Vocabularies that cross services, one enum each: schemas, domain, access rules and
reports all use these, never their own string lists."""
from enum import Enum


class Role(str, Enum):
    STORE_STAFF = "store_staff"
    SUPERVISOR = "supervisor"
    STORE_MANAGER = "store_manager"
    REGIONAL_MANAGER = "regional_manager"
    CUSTOMER_SERVICE = "customer_service"
    GENERAL_MANAGER = "general_manager"
    ADMIN = "admin"  # operations: organisation, keys, audit; handles no complaints


class StoreStatus(str, Enum):
    OPEN = "open"      # takes feedback
    CLOSED = "closed"  # not yet opened, or closed down: intake refuses its feedback


class Channel(str, Enum):
    """Where feedback came in."""
    IN_STORE = "in_store"
    HOTLINE = "hotline"
    WEB = "web"
    WECHAT = "wechat"
    SURVEY = "survey"
    EMAIL = "email"
    COMMENT_BOX = "comment_box"
    CONSUMER_ASSOCIATION = "consumer_association"  # 消协 / 12315 referrals
    MEDIA = "media"                                # newspapers, TV, radio, online media


# Referrals by a consumer association or the media: a case type of its own (seed 004):
# the store manager and the customer-service department at once, a written report in 8 h.
REFERRAL_CHANNELS = frozenset({Channel.CONSUMER_ASSOCIATION.value, Channel.MEDIA.value})


class PrincipalKind(str, Enum):
    STAFF = "staff"
    INTEGRATION = "integration"


class Category(str, Enum):
    """What a complaint is about. OTHER is kept for cases classified before the
    trained model (and for submitters who choose it); the model never answers it."""
    SERVICE_QUALITY = "service_quality"
    HYGIENE = "hygiene"
    PRODUCT_EFFICACY = "product_efficacy"
    STAFF_ATTITUDE = "staff_attitude"
    PRICE = "price"
    TECHNICIAN_SKILL = "technician_skill"
    EQUIPMENT = "equipment"
    BOOKING = "booking"
    OTHER = "other"


class Severity(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class TriageStatus(str, Enum):
    """A case whose category the model was unsure of waits for a person to confirm it."""
    PENDING = "pending"
    RESOLVED = "resolved"


class Permission(str, Enum):
    """What a caller may do (function level). Which objects it may do it to is its
    scope (closeloop_shared.access.Scope)."""
    FEEDBACK_SUBMIT = "feedback:submit"
    FEEDBACK_READ = "feedback:read"
    BOOKING_PUBLISH = "booking:publish"
    CASE_READ = "case:read"
    CASE_RESPOND = "case:respond"
    CASE_REPORT = "case:report"            # the written report of a referral case
    CASE_RESOLVE = "case:resolve"          # with an apology or compensation
    CASE_REFUND = "case:refund"            # resolve with a refund (options B-D)
    CASE_CLOSE_REFERRAL = "case:close_referral"  # resolve a consumer-association / media case
    CASE_REOPEN = "case:reopen"
    CASE_RECLASSIFY = "case:reclassify"    # correct a case's category (recorded for retraining)
    REVISIT_READ = "revisit:read"
    REVISIT_RECORD = "revisit:record"
    DELIVERY_READ = "delivery:read"
    REPORT_READ = "report:read"
    PERSONAL_DATA = "personal_data:read"   # see phones and e-mails unmasked
    ORG_READ = "org:read"
    ORG_MANAGE = "org:manage"
    KEYS_MANAGE = "keys:manage"
    AUDIT_READ = "audit:read"
