"""E-mail over SMTP: STARTTLS and authentication when configured, plain text plus HTML.

Every attempt at one logical notification carries the same Message-ID and idempotency
key: a copy sent again after a crash is recognisable, and droppable, by whoever
receives it. The password is used, never logged or echoed into an error."""
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formataddr

from closeloop_shared.text import header_safe
from services.notify.channels import ChannelError, Failure, Receipt


class SmtpChannel:
    def __init__(self, host, port, sender, user=None, password=None, starttls=False,
                 timeout=10.0, tls_context=None):
        self.host, self.port, self.sender = host, int(port), sender
        self.user, self.password = user or None, password or None
        self.starttls, self.timeout = starttls, float(timeout)
        self.tls_context = tls_context or ssl.create_default_context()

    def compose(self, outgoing):
        content = outgoing.content
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = formataddr(("", outgoing.address))
        message["Subject"] = header_safe(content.subject)  # names typed by customers end up in it
        message["Message-ID"] = outgoing.message_id
        message["X-Idempotency-Key"] = outgoing.idempotency_key
        if outgoing.key:
            message["X-Closeloop-Key"] = outgoing.key
        message.set_content(content.text, charset="utf-8")
        if content.html:
            message.add_alternative(content.html, subtype="html", charset="utf-8")
        return message

    def send(self, outgoing):
        message = self.compose(outgoing)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.tls_context)
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise ChannelError(_by_reply(code), code, "recipient refused", response=_text(reply)) from None
        except smtplib.SMTPAuthenticationError as exc:
            # the relay's credentials are wrong: an operator fixes them, the message waits
            raise ChannelError(Failure.TRANSIENT, exc.smtp_code, "authentication failed",
                               response=_text(exc.smtp_error)) from None
        except smtplib.SMTPNotSupportedError:
            raise ChannelError(Failure.TRANSIENT, "starttls_unsupported",
                               "the relay offers no STARTTLS (or AUTH)") from None
        except smtplib.SMTPResponseException as exc:
            raise ChannelError(_by_reply(exc.smtp_code), exc.smtp_code, "refused",
                               response=_text(exc.smtp_error)) from None
        except (smtplib.SMTPException, ssl.SSLError, socket.timeout, OSError) as exc:
            raise ChannelError(Failure.TRANSIENT, type(exc).__name__, str(exc)) from None
        if refused:  # some recipients refused; we send to one, so this is it
            code, reply = next(iter(refused.values()))
            raise ChannelError(_by_reply(code), code, "recipient refused", response=_text(reply))
        return Receipt(request_id=outgoing.message_id, response="250 accepted")


def _by_reply(code):
    """SMTP 5xx replies are final, 4xx ask to try again later."""
    return Failure.PERMANENT if 500 <= int(code) < 600 else Failure.TRANSIENT


def _text(reply):
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
