"""Submit realistic complaints to a running Closeloop (`make run`) and print each case
as it moves through the loop: `make demo`.

Listens to every service's events exchange, so what it prints is what the services
actually published."""
import json
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import requests
from kombu import Connection, Exchange, Queue

from closeloop_shared import events as ev
from closeloop_shared.bus import FEEDBACK_SUBMITTED_KEY, INBOUND_EXCHANGE
from deploy.local import DEMO_PASSWORD

AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
URLS = {"intake": "http://127.0.0.1:8001", "routing": "http://127.0.0.1:8010",
        "followup": "http://127.0.0.1:8003", "reporting": "http://127.0.0.1:8005"}
CHINA = timezone(timedelta(hours=8))

COMPLAINTS = [
    ("SH-XH-001", "in_store", "刘女士", "13812345678", "做完光子嫩肤后脸上红肿刺痛,美容师说是正常反应,我很担心"),
    ("HZ-XH-002", "hotline", "陈女士", "13900001111", "预约了周六下午的SPA,到店后说没有记录,白跑一趟"),
    ("GZ-TH-003", "wechat", "黄女士", "13722223333", "产后修复的毛巾和床单看起来不干净,有异味"),
    ("SH-XH-001", "consumer_association", "周先生", "13644445555", "消协转来:顾客办卡后被多收费用,要求说明"),
]


def describe(event_type, data):
    number = data.get("case_number") or data.get("case_id", "")[:8]
    if event_type == ev.CASE_SUBMITTED:
        return f"{number} 已受理 received via {data['channel']} at {data['store_name']}"
    if event_type == ev.CASE_ROUTED:
        return (f"{number} 分派 routed: {data['category']}/{data['severity']} -> "
                f"{data['assignee']['name']} ({data['assignee']['role']})")
    if event_type == ev.CASE_ESCALATED:
        return f"{number} 升级 escalated ({data['reason']}) -> {data['assignee']['name']} ({data['assignee']['role']})"
    if event_type == ev.CASE_FIRST_RESPONDED:
        return f"{number} 首次回应 first response, on time: {data['on_time']}"
    if event_type == ev.CASE_RESOLVED:
        remedy = data["remedy"]
        amount = f"{remedy['amount_fen'] / 100:.2f} yuan" if remedy.get("amount_fen") else ""
        return f"{number} 已解决 resolved: {remedy['type']} {remedy.get('refund_option') or ''} {amount}"
    if event_type == ev.REVISIT_RECORDED:
        return f"{number} 回访 revisit score {data['score']} (reopens: {data['reopens_case']})"
    if event_type == ev.CASE_REOPENED:
        return f"{number} 重新开启 reopened: {data['reason']}"
    return f"{number} {event_type}"


def watch(stop):
    """Print every Closeloop event as it is published."""
    with Connection(AMQP_URI) as conn:
        queues = [Queue(f"demo-{uuid.uuid4().hex[:6]}-{service}", Exchange(f"{service}.events", type="topic"),
                        routing_key="#", exclusive=True, auto_delete=True)
                  for service in (ev.INTAKE, ev.ROUTING, ev.FOLLOWUP)]

        def show(body, message):
            event_type = message.delivery_info["routing_key"]
            payload = body if isinstance(body, dict) else json.loads(body)
            print(f"  [{event_type:<21}] {describe(event_type, payload)}", flush=True)
            message.ack()
        with conn.Consumer(queues, callbacks=[show], accept=["json"]):
            while not stop.is_set():
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    pass
                except OSError:
                    pass


# The demo acts as the brand's customer-service department, logged in with the local
# run's demo password (deploy/local.py sets it; compose has none).
DEMO_USER = "cs-001"
SESSION = requests.Session()


def log_in():
    response = requests.post(URLS["routing"] + "/v1/auth/login", timeout=10,
                             json={"staff_id": DEMO_USER, "password": DEMO_PASSWORD})
    response.raise_for_status()
    SESSION.headers["Authorization"] = f"Bearer {response.json()['token']}"
    print(f"Logged in as {DEMO_USER} ({response.json()['staff']['name']})")


def post(service, path, body):
    response = SESSION.post(URLS[service] + path, json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def wait_for_case(case_id, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = SESSION.get(f"{URLS['routing']}/v1/cases/{case_id}", timeout=5)
        if response.status_code == 200:
            return response.json()
        time.sleep(0.3)
    raise TimeoutError(f"case {case_id} was not routed within {timeout}s")


def main():
    try:
        requests.get(URLS["intake"] + "/health", timeout=2).raise_for_status()
    except requests.RequestException:
        print("Closeloop is not running: start it with `make run` in another terminal.")
        return 1
    log_in()
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
    watcher.start()
    time.sleep(1)
    occurred = datetime.now(CHINA).replace(microsecond=0).isoformat()
    case_ids = []
    print("Submitting feedback (the last one over the bus, as a CRM would):")
    for index, (store, channel, name, phone, content) in enumerate(COMPLAINTS):
        body = {"store_id": store, "channel": channel, "content": content, "occurred_at": occurred,
                "customer": {"name": name, "phone": phone, "email": f"demo{index}@example.com"},
                "external_ref": {"source": "demo", "id": uuid.uuid4().hex}}
        if channel == "consumer_association":
            body["referral"] = {"authority": "上海市消费者权益保护委员会",
                                "reference_number": f"12315-DEMO-{uuid.uuid4().hex[:8]}"}
        if index < len(COMPLAINTS) - 1:
            case_ids.append(post("intake", "/v1/feedback", body)["case_id"])
        else:
            with Connection(AMQP_URI) as conn:
                # user_id: the broker checks it is our AMQP user; intake attributes by it
                conn.Producer().publish(body, exchange=INBOUND_EXCHANGE, routing_key=FEEDBACK_SUBMITTED_KEY,
                                        declare=[INBOUND_EXCHANGE], serializer="json", user_id=conn.userid)
    wait_for_case(case_ids[0])
    time.sleep(1)
    print("Staff answer and resolve the first case with a partial refund (option B):")
    post("routing", f"/v1/cases/{case_ids[0]}/respond", {"note": "已致电顾客致歉并安排复诊"})
    post("routing", f"/v1/cases/{case_ids[0]}/propose-remedy",
         {"type": "refund", "refund_option": "partial_continue", "amount_fen": 30_000})
    post("routing", f"/v1/cases/{case_ids[0]}/resolve", {"note": "退还部分费用,疗程继续"})
    time.sleep(1.5)
    revisits = SESSION.get(f"{URLS['followup']}/v1/revisits", params={"case_id": case_ids[0]}, timeout=5).json()
    if revisits["revisits"]:
        print("The satisfaction revisit finds the customer unhappy (score 2):")
        post("followup", f"/v1/revisits/{revisits['revisits'][0]['revisit_id']}/outcome",
             {"score": 2, "comment": "红肿还没消"})
    time.sleep(2)
    stop.set()
    summary = SESSION.get(f"{URLS['reporting']}/v1/reports/summary", timeout=5).json()
    print("Report for the last 7 days:")
    print(json.dumps({k: summary[k] for k in ("cases", "by_category", "by_status", "first_response",
                                              "satisfaction", "reopened")}, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
