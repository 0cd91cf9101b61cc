"""Local stand-ins for notify's providers, started by the tests (no network leaves the
machine): an SMTP relay with STARTTLS and AUTH (aiosmtpd, in its own process), and small
werkzeug servers shaped like Aliyun Dysms, the WeChat official-account API, a WeCom group
robot and a Standard Webhooks receiver. Each checks what the real one checks (the SMS
signature, the access token, the webhook signature) and can be told to fail."""
import base64
import datetime
import email
import email.policy
import ipaddress
import json
import mailbox
import subprocess
import sys
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from closeloop_shared.standins import free_port, port_open, wait_until
from services.notify.channels import sms, webhooks


def self_signed_certificate(directory):
    """A certificate for localhost and 127.0.0.1 (the client's CA file is the cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = Path(directory) / "relay.pem", Path(directory) / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


RELAY_SCRIPT = '''
import asyncio, mailbox, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
cert, key, port, maildir, user, password, refused = sys.argv[1:8]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
box = mailbox.Maildir(maildir, create=True)
def authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=ok, handled=False)
class Handler:
    async def handle_RCPT(self, server, session, envelope, address, options):
        if address == refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        box.add(envelope.original_content)
        return "250 Message accepted"
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=context,
                        require_starttls=True, authenticator=authenticate, auth_required=True)
controller.start()
while True:
    time.sleep(3600)
'''


class SmtpRelay:
    """aiosmtpd requiring STARTTLS and AUTH LOGIN/PLAIN; `refused` gets a 550."""

    def __init__(self, directory, user="relay-user", password="relay-secret", refused="nobody@example.com"):
        self.cert, key = self_signed_certificate(directory)
        self.port, self.maildir = free_port(), str(Path(directory) / "Maildir")
        self.user, self.password, self.refused = user, password, refused
        self.process = subprocess.Popen(
            [sys.executable, "-c", RELAY_SCRIPT, str(self.cert), str(key), str(self.port), self.maildir,
             user, password, refused], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_until(lambda: port_open(self.port), 30, "SMTP relay")

    def messages(self):
        box = mailbox.Maildir(self.maildir, factory=None, create=False)
        return [email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in box]

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


class HttpStandIn:
    """A werkzeug server in a thread, answering with `self.handle(request)`. Each
    request is recorded; `fail_next` queues canned failures ("timeout", a status code,
    or a JSON answer) served before the normal behaviour."""

    def __init__(self):
        self.requests, self.fail_next, self.lock = [], [], threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.stalled = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @Request.application
    def app(self, request):
        with self.lock:
            self.requests.append(request)
            failure = self.fail_next.pop(0) if self.fail_next else None
        if failure == "timeout":
            self.stalled.wait(5)  # longer than the client's timeout in the tests
            return Response("late", 200)
        if isinstance(failure, int):
            return Response("upstream trouble", failure)
        if isinstance(failure, dict):
            return json_response(failure)
        return self.handle(request)

    def stop(self):
        self.stalled.set()
        self.server.shutdown()


def json_response(body, status=200):
    return Response(json.dumps(body, ensure_ascii=False), status, content_type="application/json")


class AliyunSms(HttpStandIn):
    """Dysms SendSms: checks the signature with the shared secret; records the sends."""

    def __init__(self, access_key_id="LTAI-test", secret="sms-secret"):
        self.access_key_id, self.secret, self.sent = access_key_id, secret, []
        self.refused_numbers = set()  # answered isv.MOBILE_NUMBER_ILLEGAL
        super().__init__()

    def handle(self, request):
        params = dict(request.args)
        given = params.pop("Signature", None)
        if params.get("AccessKeyId") != self.access_key_id or given != sms.signature(params, self.secret):
            return json_response({"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched",
                                  "RequestId": "req-bad-sig"}, status=400)
        if params["PhoneNumbers"] in self.refused_numbers:
            return json_response({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号",
                                  "RequestId": "req-refused"})
        self.sent.append(params)
        return json_response({"Code": "OK", "Message": "OK", "RequestId": f"req-{len(self.sent)}",
                              "BizId": f"biz-{len(self.sent)}"})


class WeChatApi(HttpStandIn):
    """Official-account token and template/subscribe send; tokens can be expired."""

    def __init__(self, app_id="wx-test", secret="wx-secret"):
        self.app_id, self.secret, self.tokens, self.sent = app_id, secret, [], []
        self.valid_tokens = set()
        self.refused_openids = set()
        super().__init__()

    def expire_tokens(self):
        self.valid_tokens.clear()

    def handle(self, request):
        if request.path == "/cgi-bin/token":
            if request.args.get("appid") != self.app_id or request.args.get("secret") != self.secret:
                return json_response({"errcode": 40013, "errmsg": "invalid appid"})
            token = f"token-{len(self.tokens) + 1}"
            self.tokens.append(token)
            self.valid_tokens.add(token)
            return json_response({"access_token": token, "expires_in": 7200})
        if request.args.get("access_token") not in self.valid_tokens:
            return json_response({"errcode": 42001, "errmsg": "access_token expired"})
        body = json.loads(request.get_data())
        if body["touser"] in self.refused_openids:
            return json_response({"errcode": 43101, "errmsg": "user refuse to accept the msg"})
        self.sent.append({"path": request.path, **body})
        return json_response({"errcode": 0, "errmsg": "ok", "msgid": 1000 + len(self.sent)})


class WeComRobot(HttpStandIn):
    """Group robot webhook: 20 messages a minute per key, then 45009."""

    def __init__(self, keys=("robot-key",), per_minute=20):
        self.keys, self.per_minute, self.sent = set(keys), per_minute, []
        super().__init__()

    def handle(self, request):
        key = request.args.get("key")
        if key not in self.keys:
            return json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        if sum(1 for s in self.sent if s["key"] == key) >= self.per_minute:
            return json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        self.sent.append({"key": key, **json.loads(request.get_data())})
        return json_response({"errcode": 0, "errmsg": "ok"})


class WebhookReceiver(HttpStandIn):
    """A receiver that accepts only correctly signed posts (401 otherwise)."""

    def __init__(self, secrets):
        self.secrets, self.received, self.rejected = tuple(secrets), [], 0
        super().__init__()

    def handle(self, request):
        body = request.get_data()
        if not webhooks.verify(self.secrets, request.headers, body):
            self.rejected += 1
            return Response("bad signature", 401)
        self.received.append({"id": request.headers["webhook-id"], "body": json.loads(body)})
        return Response("", 204)


def new_secret(seed):
    return "whsec_" + base64.b64encode(seed.encode().ljust(32, b"0")).decode()
