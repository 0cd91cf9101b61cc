"""Config keys every service reads from the nameko config (deploy/nameko.yml).

Durations are seconds so tests can shrink them without changing units.
"""

AMQP_URI = "AMQP_URI"
# The bus's work queues (inbound and event queues): "classic", or "quorum" on a RabbitMQ
# cluster (README "Scaling out": an existing classic queue is not turned into a quorum one).
BUS_QUEUE_TYPE = "BUS_QUEUE_TYPE"
MONGO_URI = "MONGO_URI"
# Each service owns one database named f"{prefix}_{service_name}"; tests isolate by prefix.
MONGO_DB_PREFIX = "MONGO_DB_PREFIX"
ORG_SEED_PATH = "ORG_SEED_PATH"

MAX_BODY_BYTES = "MAX_BODY_BYTES"

# Staff tokens: every service verifies with the public keys (a JWKS file); only routing
# signs, with the private key. Unset public keys: no staff token is accepted.
AUTH_PUBLIC_KEYS_FILE = "AUTH_PUBLIC_KEYS_FILE"
AUTH_SIGNING_KEY_FILE = "AUTH_SIGNING_KEY_FILE"
AUTH_TOKEN_TTL_SECONDS = "AUTH_TOKEN_TTL_SECONDS"

# Abuse limits: submissions per client per minute (and burst) in each intake replica;
# AMQP users whose closeloop.inbound messages are accepted without an integration
# record (the local run's guest; none in compose).
INTAKE_RATE_PER_MINUTE = "INTAKE_RATE_PER_MINUTE"
INTAKE_RATE_BURST = "INTAKE_RATE_BURST"
INBOUND_TRUSTED_PUBLISHERS = "INBOUND_TRUSTED_PUBLISHERS"

SLA_FIRST_RESPONSE_SECONDS = "SLA_FIRST_RESPONSE_SECONDS"
SLA_RESOLUTION_SECONDS = "SLA_RESOLUTION_SECONDS"
SLA_REPORT_SECONDS = "SLA_REPORT_SECONDS"
# The built-in SLA policies' keep-in-loop update (counted in the store's open time) and
# how long before any clock falls due its warning goes out (services/routing/policy.py).
SLA_UPDATE_SECONDS = "SLA_UPDATE_SECONDS"
SLA_WARNING_LEAD_SECONDS = "SLA_WARNING_LEAD_SECONDS"
SLA_SCAN_INTERVAL_SECONDS = "SLA_SCAN_INTERVAL_SECONDS"
# Precise timers (closeloop_shared.due): each replica holds in memory what falls due
# within the horizon, re-read from the index every refresh interval.
DUE_HORIZON_SECONDS = "DUE_HORIZON_SECONDS"
DUE_REFRESH_SECONDS = "DUE_REFRESH_SECONDS"

REVISIT_DELAY_SECONDS = "REVISIT_DELAY_SECONDS"
REVISIT_SCAN_INTERVAL_SECONDS = "REVISIT_SCAN_INTERVAL_SECONDS"

OUTBOX_RELAY_INTERVAL_SECONDS = "OUTBOX_RELAY_INTERVAL_SECONDS"
ORG_ANNOUNCE_INTERVAL_SECONDS = "ORG_ANNOUNCE_INTERVAL_SECONDS"

SMTP_HOST = "SMTP_HOST"
SMTP_PORT = "SMTP_PORT"
SMTP_SENDER = "SMTP_SENDER"
NOTIFY_RETRY_INTERVAL_SECONDS = "NOTIFY_RETRY_INTERVAL_SECONDS"
NOTIFY_CUSTOMER_DAILY_QUOTA = "NOTIFY_CUSTOMER_DAILY_QUOTA"  # messages per customer address a day
# notify's channels (README, "Notification channels"). A channel whose credentials are
# unset is off. JSON values may be given as JSON text (environment) or as YAML maps.
SMTP_USER = "SMTP_USER"              # empty: no AUTH
SMTP_PASSWORD = "SMTP_PASSWORD"
SMTP_STARTTLS = "SMTP_STARTTLS"      # "true": upgrade with STARTTLS before AUTH
NOTIFY_SMS_ENDPOINT = "NOTIFY_SMS_ENDPOINT"  # Aliyun Dysms-shaped gateway
NOTIFY_SMS_ACCESS_KEY_ID = "NOTIFY_SMS_ACCESS_KEY_ID"
NOTIFY_SMS_ACCESS_KEY_SECRET = "NOTIFY_SMS_ACCESS_KEY_SECRET"
NOTIFY_SMS_SIGN_NAME = "NOTIFY_SMS_SIGN_NAME"
NOTIFY_SMS_TEMPLATES = "NOTIFY_SMS_TEMPLATES"  # JSON {kind: provider template code}
NOTIFY_WECHAT_API_BASE = "NOTIFY_WECHAT_API_BASE"
NOTIFY_WECHAT_APP_ID = "NOTIFY_WECHAT_APP_ID"
NOTIFY_WECHAT_APP_SECRET = "NOTIFY_WECHAT_APP_SECRET"
NOTIFY_WECHAT_MODE = "NOTIFY_WECHAT_MODE"  # "template" (service account) or "subscribe"
NOTIFY_WECHAT_TEMPLATES = "NOTIFY_WECHAT_TEMPLATES"  # JSON {kind: template id}
NOTIFY_WECOM_API_BASE = "NOTIFY_WECOM_API_BASE"
NOTIFY_WECOM_ROBOTS = "NOTIFY_WECOM_ROBOTS"  # JSON {"store:<id>" | "region:<id>" | "brand:<id>": robot key}
NOTIFY_WEBHOOKS = "NOTIFY_WEBHOOKS"  # JSON [{"id", "url", "secrets": [1-2 whsec_...], "kinds": ["*"]}]
NOTIFY_PROVIDER_TIMEOUT_SECONDS = "NOTIFY_PROVIDER_TIMEOUT_SECONDS"
NOTIFY_CUSTOMER_CHANNELS = "NOTIFY_CUSTOMER_CHANNELS"  # fallback order after the preferred one
NOTIFY_STAFF_CHANNELS = "NOTIFY_STAFF_CHANNELS"
NOTIFY_QUIET_HOURS = "NOTIFY_QUIET_HOURS"  # store-local "HH:MM-HH:MM"; no customer message inside
# How long a customer's acknowledgement waits for routing's deadlines (case_routed) so
# that it can promise the case's own first-response time; then it goes without. 0: never.
NOTIFY_ACK_WAIT_SECONDS = "NOTIFY_ACK_WAIT_SECONDS"
NOTIFY_QUIET_KINDS = "NOTIFY_QUIET_KINDS"  # kinds held in quiet hours ("a,b"); empty: every customer kind
NOTIFY_BRAND_POLICIES = "NOTIFY_BRAND_POLICIES"  # JSON {brand_id: {customer_channels, staff_channels, quiet_hours, quiet_kinds}}
NOTIFY_STAFF_HOURLY_QUOTA = "NOTIFY_STAFF_HOURLY_QUOTA"  # non-urgent messages per staff member an hour
NOTIFY_PROVIDER_PER_MINUTE = "NOTIFY_PROVIDER_PER_MINUTE"  # JSON {channel: sends a minute} (wecom: per robot)
NOTIFY_SMS_RECEIPT_TOKEN = "NOTIFY_SMS_RECEIPT_TOKEN"  # in the receipt URL the gateway pushes to; unset: off
NOTIFY_WECHAT_SERVER_TOKEN = "NOTIFY_WECHAT_SERVER_TOKEN"  # the official account's server token (signs its pushes)

# Below this confidence the model's category waits in the triage queue of the store's
# supervisor (with the top two suggestions) instead of being taken as is. 0.4: in 5-fold
# cross-validation on the corpus's training part, 83% of cases are routed at once (93%
# of those right) and 17% go to triage (the right category in the top two for 83%).
TRIAGE_CONFIDENCE_THRESHOLD = "TRIAGE_CONFIDENCE_THRESHOLD"

# The escalation ladder: how long each rung has to acknowledge a case before it climbs
# to the next rung present (services/routing/ladder.py). The top rung has no timeout.
LADDER_ACK_STORE_STAFF_SECONDS = "LADDER_ACK_STORE_STAFF_SECONDS"
LADDER_ACK_SUPERVISOR_SECONDS = "LADDER_ACK_SUPERVISOR_SECONDS"
LADDER_ACK_STORE_MANAGER_SECONDS = "LADDER_ACK_STORE_MANAGER_SECONDS"
LADDER_ACK_REGIONAL_SECONDS = "LADDER_ACK_REGIONAL_SECONDS"  # regional manager and customer service
# Duty rosters: how often each routing replica looks for shifts that ended (their open
# cases pass to the next shift), and how far back it looks after a restart.
DUTY_HANDOVER_INTERVAL_SECONDS = "DUTY_HANDOVER_INTERVAL_SECONDS"
DUTY_HANDOVER_LOOKBACK_SECONDS = "DUTY_HANDOVER_LOOKBACK_SECONDS"
# Business calendars (services/routing/calendar.py): the hours of a store nobody has set
# up yet ("HH:MM-HH:MM[,HH:MM-HH:MM...]" every day, statutory holidays not observed, as
# most salons open on holidays), and how often routing checks that this year's and next
# year's official holiday lists are known (metric + warning otherwise).
CALENDAR_DEFAULT_HOURS = "CALENDAR_DEFAULT_HOURS"
CALENDAR_CHECK_INTERVAL_SECONDS = "CALENDAR_CHECK_INTERVAL_SECONDS"

# Remedies (services/routing/remedies.py): the most each role may approve, in fen
# (None: no limit; a role not listed approves nothing); refunds B-D also need
# Permission.CASE_REFUND. A customer who already received REPEAT_REMEDY_THRESHOLD
# compensations or refunds (any store) within REPEAT_REMEDY_WINDOW_SECONDS is flagged to
# the approver.
REMEDY_APPROVAL_LIMITS_FEN = "REMEDY_APPROVAL_LIMITS_FEN"
REPEAT_REMEDY_WINDOW_SECONDS = "REPEAT_REMEDY_WINDOW_SECONDS"
REPEAT_REMEDY_THRESHOLD = "REPEAT_REMEDY_THRESHOLD"
# A new case from the same customer at the same store within this window is linked to
# the earlier ones as related (services/routing/duplicates.py).
DUPLICATE_WINDOW_SECONDS = "DUPLICATE_WINDOW_SECONDS"
# How many of its newest timeline entries a case document keeps (all of them are in
# the case_timeline collection: GET /v1/cases/{id}/timeline).
CASE_TIMELINE_KEPT = "CASE_TIMELINE_KEPT"
# How long a replica keeps reference data that rarely changes and is read for every
# message (routing: SLA policies, duty rosters; intake: integrations by AMQP user;
# closeloop_shared/cache.py): a change made through another replica shows within it, one
# made through the same replica at once. 0 reads them for every message.
REFERENCE_CACHE_SECONDS = "REFERENCE_CACHE_SECONDS"
# The tiered revisit programme (services/followup/programme.py, tiers.py): months between
# revisits per tier (JSON {tier: months}, merged over seed 002's), the tier rules (JSON,
# tiers.TierRules fields), attempts before a customer is recorded unreachable, and the
# window within which a customer is surveyed at most once across every programme.
FOLLOWUP_CADENCE_MONTHS = "FOLLOWUP_CADENCE_MONTHS"
FOLLOWUP_TIER_RULES = "FOLLOWUP_TIER_RULES"
FOLLOWUP_MAX_ATTEMPTS = "FOLLOWUP_MAX_ATTEMPTS"
FOLLOWUP_SURVEY_WINDOW_SECONDS = "FOLLOWUP_SURVEY_WINDOW_SECONDS"
# The store-local hour of an appointment's reminder the day before (moved out of
# NOTIFY_QUIET_HOURS if it falls inside them).
FOLLOWUP_REMINDER_HOUR = "FOLLOWUP_REMINDER_HOUR"
# reporting's closeloop_cases_at_risk gauge: an open case's unmet clock due within this lead.
REPORTING_AT_RISK_LEAD_SECONDS = "REPORTING_AT_RISK_LEAD_SECONDS"
# reporting's weekly digest: from this China hour on Mondays, last week's digest per region and
# brand is emitted (weekly_digest_ready), checked every interval.
REPORTING_DIGEST_HOUR = "REPORTING_DIGEST_HOUR"
REPORTING_DIGEST_INTERVAL_SECONDS = "REPORTING_DIGEST_INTERVAL_SECONDS"
# reporting folds the increments its handlers queue into the shared report buckets right
# after each event when no other replica is folding, and from a timer every interval.
REPORTING_FOLD_INTERVAL_SECONDS = "REPORTING_FOLD_INTERVAL_SECONDS"
# ... and how often it looks for increments a release before 2026-11 left in
# `pending_increments` (an upgrade's old replicas may still add some) to fold them too.
REPORTING_LEGACY_FOLD_INTERVAL_SECONDS = "REPORTING_LEGACY_FOLD_INTERVAL_SECONDS"
# The staff console (services/console): the five services' base URLs it calls (compose:
# their names on the compose network; `make run`: the local ports), how long it waits for
# an answer, whether its cookies are Secure (behind HTTPS), how often a page re-reads itself.
CONSOLE_INTAKE_URL = "CONSOLE_INTAKE_URL"
CONSOLE_ROUTING_URL = "CONSOLE_ROUTING_URL"
CONSOLE_FOLLOWUP_URL = "CONSOLE_FOLLOWUP_URL"
CONSOLE_NOTIFY_URL = "CONSOLE_NOTIFY_URL"
CONSOLE_REPORTING_URL = "CONSOLE_REPORTING_URL"
CONSOLE_API_TIMEOUT_SECONDS = "CONSOLE_API_TIMEOUT_SECONDS"
CONSOLE_SECURE_COOKIES = "CONSOLE_SECURE_COOKIES"
CONSOLE_POLL_SECONDS = "CONSOLE_POLL_SECONDS"

DEFAULTS = {
    BUS_QUEUE_TYPE: "classic",
    MONGO_URI: "mongodb://127.0.0.1:27017/?retryWrites=false&directConnection=true",
    MONGO_DB_PREFIX: "closeloop",
    ORG_SEED_PATH: "deploy/seeds/org.yaml",
    MAX_BODY_BYTES: 64 * 1024,
    AUTH_PUBLIC_KEYS_FILE: None,
    AUTH_SIGNING_KEY_FILE: None,
    AUTH_TOKEN_TTL_SECONDS: 15 * 60,
    INTAKE_RATE_PER_MINUTE: 600,
    INTAKE_RATE_BURST: 100,
    INBOUND_TRUSTED_PUBLISHERS: "guest",
    SLA_FIRST_RESPONSE_SECONDS: 24 * 3600,
    SLA_RESOLUTION_SECONDS: 48 * 3600,
    SLA_REPORT_SECONDS: 8 * 3600,
    SLA_UPDATE_SECONDS: 8 * 3600,
    SLA_WARNING_LEAD_SECONDS: 2 * 3600,
    SLA_SCAN_INTERVAL_SECONDS: 5,
    DUE_HORIZON_SECONDS: 20,
    DUE_REFRESH_SECONDS: 1,
    REVISIT_DELAY_SECONDS: 3 * 24 * 3600,
    REVISIT_SCAN_INTERVAL_SECONDS: 30,
    OUTBOX_RELAY_INTERVAL_SECONDS: 10,
    ORG_ANNOUNCE_INTERVAL_SECONDS: 300,
    SMTP_HOST: "127.0.0.1",
    SMTP_PORT: 1025,
    SMTP_SENDER: "closeloop@localhost",
    NOTIFY_RETRY_INTERVAL_SECONDS: 30,
    NOTIFY_CUSTOMER_DAILY_QUOTA: 10,
    SMTP_USER: None,
    SMTP_PASSWORD: None,
    SMTP_STARTTLS: "false",
    NOTIFY_SMS_ENDPOINT: "https://dysmsapi.aliyuncs.com/",
    NOTIFY_SMS_ACCESS_KEY_ID: None,
    NOTIFY_SMS_ACCESS_KEY_SECRET: None,
    NOTIFY_SMS_SIGN_NAME: None,
    NOTIFY_SMS_TEMPLATES: "{}",
    NOTIFY_WECHAT_API_BASE: "https://api.weixin.qq.com",
    NOTIFY_WECHAT_APP_ID: None,
    NOTIFY_WECHAT_APP_SECRET: None,
    NOTIFY_WECHAT_MODE: "template",
    NOTIFY_WECHAT_TEMPLATES: "{}",
    NOTIFY_WECOM_API_BASE: "https://qyapi.weixin.qq.com",
    NOTIFY_WECOM_ROBOTS: "{}",
    NOTIFY_WEBHOOKS: "[]",
    NOTIFY_PROVIDER_TIMEOUT_SECONDS: 10,
    NOTIFY_CUSTOMER_CHANNELS: "wechat,sms,email",
    NOTIFY_STAFF_CHANNELS: "wecom,email",
    NOTIFY_QUIET_HOURS: "21:00-09:00",
    NOTIFY_QUIET_KINDS: None,
    NOTIFY_ACK_WAIT_SECONDS: 20,
    NOTIFY_BRAND_POLICIES: "{}",
    NOTIFY_STAFF_HOURLY_QUOTA: 30,
    NOTIFY_PROVIDER_PER_MINUTE: '{"sms": 300, "wechat": 600, "wecom": 20}',
    NOTIFY_SMS_RECEIPT_TOKEN: None,
    NOTIFY_WECHAT_SERVER_TOKEN: None,
    TRIAGE_CONFIDENCE_THRESHOLD: 0.4,
    REMEDY_APPROVAL_LIMITS_FEN: {"store_manager": 50_000, "customer_service": 50_000,
                                 "regional_manager": 200_000, "general_manager": None},
    REPEAT_REMEDY_WINDOW_SECONDS: 180 * 24 * 3600,
    REPEAT_REMEDY_THRESHOLD: 2,
    DUPLICATE_WINDOW_SECONDS: 7 * 24 * 3600,
    CASE_TIMELINE_KEPT: 100,
    REFERENCE_CACHE_SECONDS: 5,
    LADDER_ACK_STORE_STAFF_SECONDS: 30 * 60,
    LADDER_ACK_SUPERVISOR_SECONDS: 3600,
    LADDER_ACK_STORE_MANAGER_SECONDS: 2 * 3600,
    LADDER_ACK_REGIONAL_SECONDS: 4 * 3600,
    DUTY_HANDOVER_INTERVAL_SECONDS: 30,
    DUTY_HANDOVER_LOOKBACK_SECONDS: 12 * 3600,
    CALENDAR_DEFAULT_HOURS: "10:00-21:00",
    CALENDAR_CHECK_INTERVAL_SECONDS: 3600,
    FOLLOWUP_CADENCE_MONTHS: {},
    FOLLOWUP_TIER_RULES: {},
    FOLLOWUP_MAX_ATTEMPTS: 3,
    FOLLOWUP_SURVEY_WINDOW_SECONDS: 30 * 24 * 3600,
    FOLLOWUP_REMINDER_HOUR: 10,
    REPORTING_AT_RISK_LEAD_SECONDS: 4 * 3600,
    REPORTING_DIGEST_HOUR: 9,
    REPORTING_DIGEST_INTERVAL_SECONDS: 300,
    REPORTING_FOLD_INTERVAL_SECONDS: 1,
    REPORTING_LEGACY_FOLD_INTERVAL_SECONDS: 60,
    CONSOLE_INTAKE_URL: "http://127.0.0.1:8001",
    CONSOLE_ROUTING_URL: "http://127.0.0.1:8010",
    CONSOLE_FOLLOWUP_URL: "http://127.0.0.1:8003",
    CONSOLE_NOTIFY_URL: "http://127.0.0.1:8004",
    CONSOLE_REPORTING_URL: "http://127.0.0.1:8005",
    CONSOLE_API_TIMEOUT_SECONDS: 8,
    CONSOLE_SECURE_COOKIES: "false",
    CONSOLE_POLL_SECONDS: 15,
}


def setting(config, key):
    """The configured value of key, else its default (numbers come back as numbers)."""
    value = config.get(key)
    if value in (None, ""):
        return DEFAULTS[key]
    default = DEFAULTS.get(key)
    if isinstance(default, (int, float)) and isinstance(value, str):
        return float(value) if "." in value else int(value)
    return value
