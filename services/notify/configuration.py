"""notify's settings and channel adapters, from the config keys (closeloop_shared.config).
A channel whose credentials are unset is off: its notifications take the next channel.
Secrets go into the adapters and nowhere else."""
import hashlib
import ssl
from dataclasses import dataclass, field

from closeloop_shared import config as keys
from closeloop_shared.config import setting
from closeloop_shared.contract import NotifyChannel as C
from closeloop_shared.contract import Role
from services.notify import policy
from services.notify.channels.sms import AliyunSmsChannel
from services.notify.channels.smtp import SmtpChannel
from services.notify.channels.webhooks import Endpoint, WebhookChannel
from services.notify.channels.wechat import WeChatChannel
from services.notify.channels.wecom import WeComRobotChannel


def _flag(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    policies: dict                 # brand_id (None: default) -> policy.ChannelPolicy
    customer_daily_quota: int
    staff_hourly_quota: int
    per_minute: dict               # channel -> sends a minute (WeCom: per robot)
    retry_interval: float          # seconds; doubles with each failed attempt on a channel
    completion_wait: float = 0     # seconds a notification waits for a later event's facts (0: never)
    robots: dict = field(default_factory=dict)       # "store:<id>" / "region:<id>" / "brand:<id>" -> key
    webhooks: tuple = ()                              # Endpoint
    provider_templates: dict = field(default_factory=dict)  # channel -> {template: code or id}
    sms_sign: str = ""

    def policy(self, brand_id):
        return self.policies.get(brand_id) or self.policies[None]

    def robot(self, store, brand_id, role=None):
        """The WeCom robot of the group the person works in: a regional manager's region,
        brand roles' brand, else the store's; then the other units of that store."""
        if store is None:
            return None
        units = [f"store:{store.store_id}", f"region:{store.region_id}", f"brand:{brand_id}"]
        own = {Role.REGIONAL_MANAGER.value: 1, Role.GENERAL_MANAGER.value: 2, Role.CUSTOMER_SERVICE.value: 2}
        first = units.pop(own.get(role, 0))
        for unit in (first, *units):
            if self.robots.get(unit):
                return self.robots[unit]
        return None


def load_settings(config):
    sms_templates = policy.json_setting(setting(config, keys.NOTIFY_SMS_TEMPLATES)) or {}
    wechat_templates = policy.json_setting(setting(config, keys.NOTIFY_WECHAT_TEMPLATES)) or {}
    return Settings(
        policies=policy.policies(setting(config, keys.NOTIFY_CUSTOMER_CHANNELS),
                                 setting(config, keys.NOTIFY_STAFF_CHANNELS),
                                 setting(config, keys.NOTIFY_QUIET_HOURS),
                                 setting(config, keys.NOTIFY_BRAND_POLICIES),
                                 setting(config, keys.NOTIFY_QUIET_KINDS)),
        customer_daily_quota=int(setting(config, keys.NOTIFY_CUSTOMER_DAILY_QUOTA)),
        staff_hourly_quota=int(setting(config, keys.NOTIFY_STAFF_HOURLY_QUOTA)),
        per_minute={C(k).value: int(v) for k, v in
                    (policy.json_setting(setting(config, keys.NOTIFY_PROVIDER_PER_MINUTE)) or {}).items()},
        retry_interval=float(setting(config, keys.NOTIFY_RETRY_INTERVAL_SECONDS)),
        completion_wait=float(setting(config, keys.NOTIFY_ACK_WAIT_SECONDS)),
        robots=policy.json_setting(setting(config, keys.NOTIFY_WECOM_ROBOTS)) or {},
        webhooks=webhook_endpoints(config),
        provider_templates={C.SMS.value: sms_templates, C.WECHAT.value: wechat_templates},
        sms_sign=setting(config, keys.NOTIFY_SMS_SIGN_NAME) or "")


def webhook_endpoints(config):
    return tuple(Endpoint(e["id"], e["url"], tuple(e["secrets"]), tuple(e.get("kinds") or ("*",)))
                 for e in policy.json_setting(setting(config, keys.NOTIFY_WEBHOOKS)) or ())


def build_channels(config, tls_context=None):
    """The adapters of the channels that are configured: {channel: adapter}."""
    timeout = float(setting(config, keys.NOTIFY_PROVIDER_TIMEOUT_SECONDS))
    channels = {C.EMAIL.value: SmtpChannel(
        setting(config, keys.SMTP_HOST), setting(config, keys.SMTP_PORT), setting(config, keys.SMTP_SENDER),
        user=setting(config, keys.SMTP_USER), password=setting(config, keys.SMTP_PASSWORD),
        starttls=_flag(setting(config, keys.SMTP_STARTTLS)), timeout=timeout,
        tls_context=tls_context or ssl.create_default_context())}
    if setting(config, keys.NOTIFY_SMS_ACCESS_KEY_ID):
        channels[C.SMS.value] = AliyunSmsChannel(
            setting(config, keys.NOTIFY_SMS_ENDPOINT), setting(config, keys.NOTIFY_SMS_ACCESS_KEY_ID),
            setting(config, keys.NOTIFY_SMS_ACCESS_KEY_SECRET), setting(config, keys.NOTIFY_SMS_SIGN_NAME),
            timeout=timeout)
    if setting(config, keys.NOTIFY_WECHAT_APP_ID):
        channels[C.WECHAT.value] = WeChatChannel(
            setting(config, keys.NOTIFY_WECHAT_API_BASE), setting(config, keys.NOTIFY_WECHAT_APP_ID),
            setting(config, keys.NOTIFY_WECHAT_APP_SECRET), mode=setting(config, keys.NOTIFY_WECHAT_MODE),
            timeout=timeout)
    if policy.json_setting(setting(config, keys.NOTIFY_WECOM_ROBOTS)):
        channels[C.WECOM.value] = WeComRobotChannel(setting(config, keys.NOTIFY_WECOM_API_BASE), timeout=timeout)
    endpoints = webhook_endpoints(config)
    if endpoints:
        channels[C.WEBHOOK.value] = WebhookChannel(endpoints, timeout=timeout)
    return channels


def address_key(address):
    """An address as a counter key may hold it (a digest: robot keys are credentials)."""
    return hashlib.sha256(address.encode("utf-8")).hexdigest()[:16]
