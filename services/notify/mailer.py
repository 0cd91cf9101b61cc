"""E-mail over SMTP, the first real channel.

Every attempt at one logical notification carries the same Message-ID and idempotency
key (services.notify.repository.identity): a copy sent again after a crash is
recognisable, and droppable, by whoever receives it."""
import smtplib
from email.message import EmailMessage

from nameko.extensions import DependencyProvider
from tenacity import retry, stop_after_attempt, wait_exponential

from closeloop_shared.config import SMTP_HOST, SMTP_PORT, SMTP_SENDER, setting
from closeloop_shared.text import header_safe


class SmtpMailer:
    def __init__(self, host, port, sender):
        self.host, self.port, self.sender = host, int(port), sender

    # Short retries ride out a blip; longer outages go to the retry timer.
    @retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def send(self, recipient, subject, body, message_key, message_id, idempotency_key):
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = header_safe(subject)  # names typed by customers end up in it
        message["Message-ID"] = message_id
        message["X-Closeloop-Key"] = message_key
        message["X-Idempotency-Key"] = idempotency_key
        message.set_content(body, charset="utf-8")
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(message)


class Mailer(DependencyProvider):
    def get_dependency(self, worker_ctx):
        config = self.container.config
        return SmtpMailer(setting(config, SMTP_HOST), setting(config, SMTP_PORT),
                          setting(config, SMTP_SENDER))
