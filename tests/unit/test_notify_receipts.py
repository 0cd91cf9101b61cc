"""services/notify/receipts.py: providers' delivery reports read into one shape."""
import hashlib

import pytest

from services.notify import receipts

PUSH = """<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>
<FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>
<CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>
<Status><![CDATA[{status}]]></Status></xml>"""


def test_a_wechat_send_report_names_the_message_by_its_msgid():
    delivered = receipts.from_wechat(PUSH.format(status="success").encode())
    assert delivered.match == {"provider_message_id": "200163836"} and delivered.delivered
    blocked = receipts.from_wechat(PUSH.format(status="failed:user block"))
    assert not blocked.delivered and blocked.code == "failed:userblock"
    assert receipts.from_wechat(PUSH.format(status="failed: system failed")).code == "failed:systemfailed"


@pytest.mark.parametrize("body", [
    "<xml><MsgType>event</MsgType><Event>subscribe</Event></xml>",
    "not xml at all",
    '<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Event>&a;</Event></xml>',
])
def test_anything_else_is_not_a_report(body):
    with pytest.raises(receipts.NotAReport):
        receipts.from_wechat(body)


def test_wechat_signatures():
    signature = hashlib.sha1("".join(sorted(("server-token", "1395658920", "n0nce"))).encode()).hexdigest()
    assert receipts.wechat_signature_valid("server-token", signature, "1395658920", "n0nce")
    assert not receipts.wechat_signature_valid("other-token", signature, "1395658920", "n0nce")
    assert not receipts.wechat_signature_valid(None, signature, "1395658920", "n0nce")
    assert not receipts.wechat_signature_valid("server-token", None, "1395658920", "n0nce")


def test_an_aliyun_report_names_the_message_by_our_out_id():
    report = receipts.from_aliyun({"out_id": "k1", "success": False, "err_code": "MK:0001", "err_msg": "关机",
                                   "biz_id": "b1", "report_time": "2026-11-24 11:00:05"})
    assert report == receipts.Report({"idempotency_key": "k1"}, False, "MK:0001", "关机", "b1", "2026-11-24 11:00:05")
