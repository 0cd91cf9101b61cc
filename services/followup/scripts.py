"""What a revisit owner sees of a task: the customer's contact as their role may see it,
and the script for the call (a jinja2 template per purpose, services/followup/scripts/,
seed 002: 问候语、服务提醒、优惠信息、客户关怀). Pure: no nameko, no pymongo."""
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from closeloop_shared.access import contact_view

SCRIPTS = Environment(loader=FileSystemLoader(Path(__file__).parent / "scripts"),
                      undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
HIDDEN = frozenset({"_id", "outbox", "outbox_pending", "lease_owner", "lease_until"})


def script_text(task, store_name):
    return SCRIPTS.get_template(task["script"]).render(
        customer=task["customer"], owner=task["owner"], tier=task["tier"], store_name=store_name).strip()


def task_view(task, principal, store_name=""):
    shown = {"task_id": task["_id"], **{k: v for k, v in task.items() if k not in HIDDEN}}
    shown["customer"] = contact_view(task["customer"], principal)
    shown["script_text"] = script_text(task, store_name)
    return shown
