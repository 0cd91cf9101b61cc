"""notify's channel adapters against local servers the tests start: an aiosmtpd relay
with STARTTLS and AUTH, and HTTP stand-ins shaped like Aliyun Dysms, the WeChat
official-account API, a WeCom group robot and a Standard Webhooks receiver. Successes,
timeouts, 5xx, the providers' error codes, an expired WeChat token, bad signatures."""
import json
import logging
import ssl
import time

import pytest

from closeloop_shared.standins import free_port
from services.notify.channels import ChannelError, Content, Failure, Outgoing
from services.notify.channels import sms
from services.notify.channels.sms import AliyunSmsChannel
from services.notify.channels.smtp import SmtpChannel
from services.notify.channels.webhooks import Endpoint, WebhookChannel
from services.notify.channels.wechat import WeChatChannel
from services.notify.channels.wecom import WeComRobotChannel
from tests.integration.notify_providers import (AliyunSms, SmtpRelay, WebhookReceiver, WeChatApi, WeComRobot,
                                                new_secret)

KEY = "5f2c0c7d9a1b4e3f8a6d2c1b0e9f8a7d"


def outgoing(address, **content):
    return Outgoing(address, Content(**content), KEY, f"<{KEY}@closeloop>", key="c42:acknowledgement")


def failure_of(send, message):
    with pytest.raises(ChannelError) as raised:
        send(message)
    return raised.value


# -- e-mail -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    server = SmtpRelay(tmp_path_factory.mktemp("relay"))
    yield server
    server.stop()


def smtp(relay, **overrides):
    settings = dict(host="127.0.0.1", port=relay.port, sender="care@yueyan.example", user=relay.user,
                    password=relay.password, starttls=True, timeout=5,
                    tls_context=ssl.create_default_context(cafile=str(relay.cert)))
    settings.update(overrides)
    return SmtpChannel(**settings)


def test_mail_goes_through_starttls_and_auth_with_plain_and_html(relay):
    receipt = smtp(relay).send(outgoing("liu@example.com", subject="【悦颜】您的反馈已受理\r\nBcc: x@evil.example",
                                        text="尊敬的刘女士:已受理", html="<p>尊敬的刘女士:已受理</p>"))
    assert receipt.request_id == f"<{KEY}@closeloop>"
    mail = next(m for m in relay.messages() if m["Message-ID"] == f"<{KEY}@closeloop>")
    assert mail["Subject"] == "【悦颜】您的反馈已受理 Bcc: x@evil.example" and mail["Bcc"] is None
    assert mail["X-Idempotency-Key"] == KEY and mail["X-Closeloop-Key"] == "c42:acknowledgement"
    assert mail.get_body(("plain",)).get_content().strip() == "尊敬的刘女士:已受理"
    assert mail.get_body(("html",)).get_content().strip() == "<p>尊敬的刘女士:已受理</p>"


def test_a_wrong_password_is_a_transient_failure_and_the_password_is_not_in_it(relay):
    error = failure_of(smtp(relay, password="wrong-password").send, outgoing("liu@example.com", subject="s", text="t"))
    assert (error.failure, error.code) == (Failure.TRANSIENT, "535")
    assert "wrong-password" not in str(error) + error.response


def test_without_starttls_the_relay_refuses_to_authenticate(relay):
    error = failure_of(smtp(relay, starttls=False).send, outgoing("liu@example.com", subject="s", text="t"))
    assert error.failure is Failure.TRANSIENT


def test_a_refused_recipient_is_permanent_and_its_address_is_masked(relay):
    error = failure_of(smtp(relay).send, outgoing(relay.refused, subject="s", text="t"))
    assert (error.failure, error.code) == (Failure.PERMANENT, "550")
    assert relay.refused not in error.response


def test_a_relay_that_is_down_or_silent_is_transient():
    silent = HangingPort()
    try:
        started = time.monotonic()
        error = failure_of(SmtpChannel("127.0.0.1", silent.port, "a@b.c", timeout=0.5).send,
                           outgoing("liu@example.com", subject="s", text="t"))
        assert error.failure is Failure.TRANSIENT and time.monotonic() - started < 3
    finally:
        silent.close()
    error = failure_of(SmtpChannel("127.0.0.1", free_port(), "a@b.c", timeout=1).send,
                       outgoing("liu@example.com", subject="s", text="t"))
    assert error.failure is Failure.TRANSIENT


class HangingPort:
    """Accepts connections and never says a word."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


# -- SMS (Aliyun Dysms shape) ----------------------------------------------------------------

@pytest.fixture
def gateway():
    server = AliyunSms()
    yield server
    server.stop()


def aliyun(gateway, **overrides):
    settings = dict(endpoint=gateway.url + "/", access_key_id=gateway.access_key_id,
                    access_key_secret=gateway.secret, sign_name="悦颜美容", timeout=1)
    settings.update(overrides)
    return AliyunSmsChannel(**settings)


SMS = dict(template="SMS_300001", params={"store": "上海徐汇店", "number": "CL-20261124-000042"},
           text="【悦颜美容】您的反馈已受理")


def test_sms_is_signed_and_the_provider_ids_come_back(gateway):
    receipt = aliyun(gateway).send(outgoing("+8613812345678", **SMS))
    assert (receipt.request_id, receipt.provider_message_id) == ("req-1", "biz-1")
    sent = gateway.sent[0]
    assert sent["PhoneNumbers"] == "13812345678" and sent["SignName"] == "悦颜美容"
    assert sent["TemplateCode"] == "SMS_300001" and sent["OutId"] == KEY
    assert json.loads(sent["TemplateParam"]) == SMS["params"]
    assert "sms-secret" not in json.dumps(gateway.requests[0].args)


def test_a_wrong_secret_fails_the_gateways_signature_check(gateway):
    error = failure_of(aliyun(gateway, access_key_secret="not-it").send, outgoing("+8613812345678", **SMS))
    assert (error.failure, error.code, error.request_id) == (Failure.PERMANENT, "SignatureDoesNotMatch", "req-bad-sig")
    assert gateway.sent == []


@pytest.mark.parametrize("address, sent", [
    ("+85291234567", "85291234567"),    # another country: with its code, as the international route takes it
    ("138 1234 5678", "13812345678"),   # not E.164, still the number
])
def test_aliyun_gets_a_mainland_number_national_and_another_with_its_country_code(gateway, address, sent):
    aliyun(gateway).send(outgoing(address, **SMS))
    assert gateway.sent[-1]["PhoneNumbers"] == sent


@pytest.mark.parametrize("address", ["+861381234567", "not a number", ""])
def test_an_address_that_is_no_valid_number_is_refused_for_good_before_the_gateway(gateway, address):
    before = len(gateway.requests)
    error = failure_of(aliyun(gateway).send, outgoing(address, **SMS))
    assert (error.failure, error.code) == (Failure.PERMANENT, "invalid_number")
    assert len(gateway.requests) == before


def test_a_fault_of_our_own_while_building_the_request_is_no_invalid_number(gateway, monkeypatch):
    def broken(params, secret, method="GET"):
        raise ValueError("signing broke")
    monkeypatch.setattr(sms, "signature", broken)
    with pytest.raises(ValueError, match="signing broke"):  # not a ChannelError: the address is fine
        aliyun(gateway).send(outgoing("+8613812345678", **SMS))
    assert gateway.requests == []


@pytest.mark.parametrize("answer, failure", [
    ({"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控", "RequestId": "r1"}, Failure.THROTTLED),
    ({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "r2"}, Failure.PERMANENT),
    ({"Code": "isp.SYSTEM_ERROR", "Message": "系统错误", "RequestId": "r3"}, Failure.TRANSIENT),
    (503, Failure.TRANSIENT),
    ("timeout", Failure.TRANSIENT),
])
def test_gateway_error_codes_and_outages(gateway, answer, failure):
    gateway.fail_next.append(answer)
    error = failure_of(aliyun(gateway).send, outgoing("+8613812345678", **SMS))
    assert error.failure is failure
    if isinstance(answer, dict):
        assert (error.code, error.request_id) == (answer["Code"], answer["RequestId"])
    assert aliyun(gateway).send(outgoing("+8613812345678", **SMS)).request_id  # then it works again


# -- WeChat official account --------------------------------------------------------------------

@pytest.fixture
def wechat_api():
    server = WeChatApi()
    yield server
    server.stop()


def wechat(api, **overrides):
    return WeChatChannel(**{"api_base": api.url, "app_id": api.app_id, "app_secret": api.secret,
                            "timeout": 1, **overrides})


WECHAT = dict(template="tmpl-ack", params={"thing1": "上海徐汇店", "character_string2": "CL-20261124-000042"},
              link="https://care.yueyan.example/c/CL-20261124-000042")


def test_template_message_fetches_a_token_once_and_sends_the_data_fields(wechat_api):
    channel = wechat(wechat_api)
    first = channel.send(outgoing("openid-liu", **WECHAT))
    channel.send(outgoing("openid-liu", **WECHAT))
    assert first.provider_message_id == "1001"
    assert wechat_api.tokens == ["token-1"]  # cached between sends
    sent = wechat_api.sent[0]
    assert sent["path"] == "/cgi-bin/message/template/send" and sent["touser"] == "openid-liu"
    assert sent["data"] == {"thing1": {"value": "上海徐汇店"}, "character_string2": {"value": "CL-20261124-000042"}}
    assert sent["client_msg_id"] == KEY and sent["url"] == WECHAT["link"]


def test_an_expired_token_is_refreshed_and_the_send_retried_once(wechat_api):
    channel = wechat(wechat_api)
    channel.send(outgoing("openid-liu", **WECHAT))
    wechat_api.expire_tokens()
    assert channel.send(outgoing("openid-liu", **WECHAT)).provider_message_id == "1002"
    assert wechat_api.tokens == ["token-1", "token-2"]


def test_a_token_that_stays_invalid_is_not_retried_forever(wechat_api):
    channel = wechat(wechat_api)
    expired = {"errcode": 42001, "errmsg": "access_token expired"}
    wechat_api.fail_next.extend([{"access_token": "bad-1", "expires_in": 7200}, expired,
                                 {"access_token": "bad-2", "expires_in": 7200}, expired])
    error = failure_of(channel.send, outgoing("openid-liu", **WECHAT))
    assert (error.failure, error.code) == (Failure.TRANSIENT, "42001")
    assert len([r for r in wechat_api.requests if r.path != "/cgi-bin/token"]) == 2  # the send, one retry


def test_a_user_who_refused_is_permanent(wechat_api):
    wechat_api.refused_openids.add("openid-refuser")
    error = failure_of(wechat(wechat_api).send, outgoing("openid-refuser", **WECHAT))
    assert (error.failure, error.code) == (Failure.PERMANENT, "43101")


@pytest.mark.parametrize("code", [45009, 45047])
def test_rate_limits_defer(wechat_api, code):
    channel = wechat(wechat_api)
    channel.token.get()
    wechat_api.fail_next.append({"errcode": code, "errmsg": "reach max api daily quota limit"})
    assert failure_of(channel.send, outgoing("openid-liu", **WECHAT)).failure is Failure.THROTTLED


def test_wrong_app_secret_and_outages_are_transient(wechat_api):
    assert failure_of(wechat(wechat_api, app_secret="nope").send,
                      outgoing("openid-liu", **WECHAT)).code == "40013"
    wechat_api.fail_next.append(502)
    assert failure_of(wechat(wechat_api).send, outgoing("openid-liu", **WECHAT)).failure is Failure.TRANSIENT


def test_subscription_messages_use_bizsend_with_a_page(wechat_api):
    wechat(wechat_api, mode="subscribe").send(outgoing("openid-liu", **WECHAT))
    sent = wechat_api.sent[0]
    assert sent["path"] == "/cgi-bin/message/subscribe/bizsend" and sent["page"] == WECHAT["link"]


# -- WeCom group robot ----------------------------------------------------------------------------

@pytest.fixture
def robot():
    server = WeComRobot(per_minute=3)
    yield server
    server.stop()


def test_markdown_to_the_robot_then_its_rate_limit_defers(robot):
    channel = WeComRobotChannel(robot.url, timeout=1)
    for _ in range(3):
        channel.send(outgoing("robot-key", text="**【升级】** 顾客反馈 CL-1 已上报至您"))
    assert robot.sent[0]["markdown"]["content"] == "**【升级】** 顾客反馈 CL-1 已上报至您"
    assert failure_of(channel.send, outgoing("robot-key", text="x")).failure is Failure.THROTTLED


def test_an_unknown_robot_key_is_permanent_and_outages_transient(robot):
    channel = WeComRobotChannel(robot.url, timeout=0.5)
    assert failure_of(channel.send, outgoing("stale-key", text="x")).code == "93000"
    robot.fail_next.append("timeout")
    assert failure_of(channel.send, outgoing("robot-key", text="x")).failure is Failure.TRANSIENT


def test_markdown_is_cut_to_4096_bytes(robot):
    WeComRobotChannel(robot.url).send(outgoing("robot-key", text="投诉" * 1000))
    assert len(robot.sent[0]["markdown"]["content"].encode()) <= 4096


# -- outbound webhooks (Standard Webhooks) ---------------------------------------------------------

OLD, NEW = new_secret("old"), new_secret("new")


@pytest.fixture
def receiver():
    server = WebhookReceiver([NEW])
    yield server
    server.stop()


def hooks(receiver, secrets, **overrides):
    return WebhookChannel([Endpoint("crm", receiver.url + "/hooks", tuple(secrets))],
                          **{"timeout": 1, "tries": 3, "backoff": 0.01, **overrides})


BODY = {"type": "case.acknowledgement", "case_id": "c42"}


def test_signed_with_both_active_secrets_the_receiver_accepts_either(receiver):
    hooks(receiver, [OLD, NEW]).send(outgoing("crm", params=BODY))
    assert receiver.received == [{"id": KEY, "body": BODY}]
    signature = receiver.requests[0].headers["webhook-signature"].split()
    assert len(signature) == 2 and all(s.startswith("v1,") for s in signature)


def test_a_receiver_refuses_a_signature_made_with_a_secret_it_does_not_hold(receiver):
    error = failure_of(hooks(receiver, [OLD]).send, outgoing("crm", params=BODY))
    assert (error.failure, error.code) == (Failure.PERMANENT, "http_401")
    assert receiver.rejected == 1 and receiver.received == []  # a 4xx is not retried


def test_5xx_and_timeouts_are_retried_with_backoff_and_the_same_id(receiver):
    receiver.fail_next.extend([503, "timeout"])
    hooks(receiver, [NEW]).send(outgoing("crm", params=BODY))
    assert [r.headers["webhook-id"] for r in receiver.requests] == [KEY] * 3
    assert len(receiver.received) == 1


def test_persistent_5xx_gives_up_after_the_tries(receiver):
    receiver.fail_next.extend([500] * 5)
    error = failure_of(hooks(receiver, [NEW]).send, outgoing("crm", params=BODY))
    assert (error.failure, error.code) == (Failure.TRANSIENT, "http_500")
    assert len(receiver.requests) == 3


def test_no_secret_or_token_reaches_the_logs_even_at_debug(wechat_api, robot, caplog):
    caplog.set_level(logging.DEBUG)
    wechat(wechat_api).send(outgoing("openid-liu", **WECHAT))
    WeComRobotChannel(robot.url).send(outgoing("robot-key", text="x"))
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")  # the stand-ins' own log
    for secret in (wechat_api.secret, "token-1", "robot-key"):
        assert secret not in ours
