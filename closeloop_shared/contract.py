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


class CustomerTier(str, Enum):
    """How the chain ranks a customer (when intake knows it): SLA policies may differ."""
    KEY = "key"              # 重点客户
    REGULAR = "regular"      # 普通客户
    POTENTIAL = "potential"  # 潜在客户
    SPECIAL = "special"      # 特殊客户 (needs particular care)


class ClockName(str, Enum):
    """The deadlines a case can owe (services/routing/policy.py, clocks.py)."""
    FIRST_RESPONSE = "first_response"
    UPDATE = "update"          # keep-in-loop: tell the customer how it is going, again and again
    RESOLUTION = "resolution"
    REPORT = "report"          # the written report a referral owes (seed 004: within 8 hours)


class ClockBasis(str, Enum):
    """How a clock counts: wall time (the promise to the customer, "24 hours") or the
    store's open time on its business calendar (the staff standard)."""
    WALL = "wall"
    BUSINESS = "business"


class TriageStatus(str, Enum):
    """A case whose category the model was unsure of waits for a person to confirm it."""
    PENDING = "pending"
    RESOLVED = "resolved"


class LinkReason(str, Enum):
    """Why two cases are related (case_linked's reason)."""
    DUPLICATE = "duplicate"  # the same customer complained again at the store (routing found it)
    STAFF = "staff"          # a member of staff linked them


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
    CASE_ACKNOWLEDGE = "case:acknowledge"  # take ownership of a case assigned or escalated to one
    CASE_REMEDY_APPROVE = "case:remedy_approve"  # approve or reject a remedy (within one's limit)
    CASE_ROOT_CAUSE = "case:root_cause"    # record a root cause and improvement actions
    CASE_CLOSE = "case:close"
    CASE_REPORT_SIGN_OFF = "case:report_sign_off"  # the general manager signs a referral's report
    CASE_MERGE = "case:merge"              # link or merge duplicate cases
    CASE_ARCHIVE = "case:archive"
    CASE_REASSIGN = "case:reassign"        # hand a case to another person on its store's chain
    ROSTER_MANAGE = "roster:manage"        # set a store's duty roster
    REVISIT_READ = "revisit:read"
    REVISIT_RECORD = "revisit:record"
    CUSTOMER_MANAGE = "customer:manage"    # import customer profiles, override a tier, record consent
    DELIVERY_READ = "delivery:read"
    REPORT_READ = "report:read"
    PERSONAL_DATA = "personal_data:read"   # see phones and e-mails unmasked
    ORG_READ = "org:read"
    ORG_MANAGE = "org:manage"
    KEYS_MANAGE = "keys:manage"
    AUDIT_READ = "audit:read"
    SLA_MANAGE = "sla:manage"              # create, change and deactivate SLA policies
    CALENDAR_MANAGE = "calendar:manage"    # a store's business hours and closures
    CALENDAR_ADMIN = "calendar:admin"      # brand date overrides, official holiday lists
    HEALTH_DATA = "health_data:read"       # a customer's allergies, pregnancy, postpartum status (PIPL)


class NotifyChannel(str, Enum):
    """How notify reaches a person or a system (services/notify/channels)."""
    EMAIL = "email"
    SMS = "sms"
    WECHAT = "wechat"    # official-account template / subscription message to an openid
    WECOM = "wecom"      # WeCom group robot of the store's (or region's) staff group
    WEBHOOK = "webhook"  # another system, signed per Standard Webhooks


class DeliveryStatus(str, Enum):
    """A logical notification's life in notify's delivery log."""
    QUEUED = "queued"
    DEFERRED = "deferred"      # quiet hours, or a rate limit: goes out when due, in order
    SENDING = "sending"        # leased to a sender
    SENT = "sent"              # the provider took it
    DELIVERED = "delivered"    # the provider reported it delivered
    FAILED = "failed"          # this attempt failed; retried at next_attempt_at
    ABANDONED = "abandoned"    # no channel left: notification_failed was emitted
    SUPPRESSED = "suppressed"  # over a customer's daily quota, or they withdrew consent: kept in the log, not sent


class CaseStatus(str, Enum):
    """Where a case stands (services/routing/lifecycle.py: the transitions)."""
    NEW = "new"                            # submitted, nobody owns it yet
    ASSIGNED = "assigned"                  # routed to someone who has not acknowledged it
    ACKNOWLEDGED = "acknowledged"          # its owner took it on
    INVESTIGATING = "investigating"        # the customer has been answered; being worked on
    PENDING_CUSTOMER = "pending_customer"  # waiting for the customer's information: clocks paused
    RESOLVED = "resolved"                  # remedy given, satisfaction revisit pending
    CLOSED = "closed"                      # root cause recorded, revisit satisfied (or merged)
    REOPENED = "reopened"                  # the customer was not satisfied, or staff reopened it
    ARCHIVED = "archived"                  # filed away: nothing more happens to it


# Cases still being worked on (their clocks may run, they count as open in reports).
ACTIVE_CASE_STATUSES = frozenset({
    CaseStatus.NEW, CaseStatus.ASSIGNED, CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING,
    CaseStatus.PENDING_CUSTOMER, CaseStatus.REOPENED})


class CaseAction(str, Enum):
    """What staff can do to a case: each is POST /v1/cases/{id}/{value}."""
    ACKNOWLEDGE = "acknowledge"
    RESPOND = "respond"                    # to the customer: meets the first-response clock
    NOTE = "note"                          # an investigation note with evidence references
    REPORT_TO_SUPERIOR = "report-to-superior"
    REQUEST_INFO = "request-info"          # ask the customer for information: clocks pause
    RESUME = "resume"                      # the customer answered: clocks resume
    PROPOSE_REMEDY = "propose-remedy"
    APPROVE_REMEDY = "approve-remedy"
    REJECT_REMEDY = "reject-remedy"
    ROOT_CAUSE = "root-cause"
    FILE_REPORT = "file-report"            # a referral's written report (store manager / CS)
    SIGN_OFF_REPORT = "sign-off-report"    # ... counts as delivered when the GM signs it off
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    LINK = "link"
    MERGE = "merge"
    ARCHIVE = "archive"


class RemedyType(str, Enum):
    APOLOGY = "apology"
    VOUCHER = "voucher"
    COMPENSATION = "compensation"
    REFUND = "refund"


class RefundOption(str, Enum):
    """The store procedure's options A-D (seed 004: 问清客人想怎么办?)."""
    NONE_CONTINUE = "none_continue"        # A 不退款,还做
    PARTIAL_CONTINUE = "partial_continue"  # B 部分退,还做
    FULL_CONTINUE = "full_continue"        # C 全退,还做
    FULL_STOP = "full_stop"                # D 全退,不做

    @property
    def letter(self):
        return "ABCD"[list(RefundOption).index(self)]

    @property
    def refunds(self):
        return self is not RefundOption.NONE_CONTINUE

    @property
    def continues_treatment(self):
        return self is not RefundOption.FULL_STOP


class RemedyStatus(str, Enum):
    """A remedy's place in the ledger: waiting for an approver whose limit covers it,
    approved (within the proposer's own limit, or by the approver), rejected."""
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


class RootCause(str, Enum):
    """Why the complaint arose (seed 004: 形成投诉的原因)."""
    # the customer's side (顾客的原因)
    MISUNDERSTANDING = "misunderstanding"          # 沟通理解不好
    EXPECTATION_GAP = "expectation_gap"            # 与自我期望值有落差
    HABITUAL_VENTING = "habitual_venting"          # 习惯性或有偏见的情绪发泄
    # the salon's side (美容院的原因)
    POLICY_MANAGEMENT = "policy_management"        # 政策及管理
    POOR_COMMUNICATION = "poor_communication"      # 沟通不良
    UNKEPT_PROMISE = "unkept_promise"              # 无法实现承诺
    WILLING_BUT_UNABLE = "willing_but_unable"      # 有心无力
    SERVICE_NOT_IN_PLACE = "service_not_in_place"  # 服务不到位

    @property
    def side(self):
        return "customer" if self in _CUSTOMER_SIDE else "salon"


_CUSTOMER_SIDE = frozenset({RootCause.MISUNDERSTANDING, RootCause.EXPECTATION_GAP,
                            RootCause.HABITUAL_VENTING})


# The channels a customer may prefer (the rest are for staff and systems).
CUSTOMER_NOTIFY_CHANNELS = (NotifyChannel.WECHAT.value, NotifyChannel.SMS.value, NotifyChannel.EMAIL.value)


class RevisitPurpose(str, Enum):
    """Why a relationship revisit is made (seed 002: 回访目的)."""
    SATISFACTION = "satisfaction"
    CARE = "care"                          # 客户关怀, also after a no-show
    SERVICE_REMINDER = "service_reminder"  # 服务提醒: a treatment cycle, a card expiring
    OFFER = "offer"                        # 优惠信息


class RevisitTaskStatus(str, Enum):
    """A relationship revisit task in followup's programme (services/followup/programme.py)."""
    SCHEDULED = "scheduled"      # waits for its due time
    DUE = "due"                  # on its owner's list
    COMPLETED = "completed"      # the customer was reached and an outcome recorded
    UNREACHABLE = "unreachable"  # every attempt failed: counts against completion, never dropped
    CANCELLED = "cancelled"      # consent withdrawn, or replaced by a reschedule
    THROTTLED = "throttled"      # a survey within the window across programmes: not asked again


class ContactStopped(str, Enum):
    """Why followup stopped contacting a customer: a revisit's `cancel_reason`, an
    appointment's `contact_stopped` (reminders and confirmations no longer sent)."""
    CONSENT_WITHDRAWN = "consent_withdrawn"


class AppointmentStatus(str, Enum):
    """An appointment as booking systems report it (appointment.* on closeloop.inbound)."""
    BOOKED = "booked"
    ATTENDED = "attended"
    NO_SHOW = "no_show"      # the customer did not come: a care revisit follows
    CANCELLED = "cancelled"  # its reminder is removed
