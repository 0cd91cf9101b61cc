"""The backup and its restore (deploy/backup.py), run as the compose `backup` service runs
them, natively, against the MongoDB-protocol server and RabbitMQ: what a backup took comes
back after the data was damaged: documents, indexes, the index-migration records, and the
broker's queues."""
import json
import os
import subprocess
import sys
import urllib.parse
import uuid
from datetime import datetime, timezone

import pytest
import requests
from pymongo import ASCENDING

from tests.fixtures import ROOT

pytestmark = pytest.mark.integration
MANAGEMENT = "http://127.0.0.1:15672"


@pytest.fixture
def broker(rabbit_config):
    uri = urllib.parse.urlsplit(rabbit_config["AMQP_URI"])
    vhost = urllib.parse.unquote(uri.path[1:])
    session = requests.Session()
    session.auth = (urllib.parse.unquote(uri.username), urllib.parse.unquote(uri.password))
    return session, vhost


def backup_command(*args, env):
    done = subprocess.run([sys.executable, "-m", "deploy.backup", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_backup_restores_documents_indexes_migration_records_and_broker_queues(mongo_client, mongo_uri, tmp_path,
                                                                                 broker):
    prefix = f"bk{uuid.uuid4().hex[:8]}"
    cases = mongo_client[f"{prefix}_routing"]["cases"]
    cases.create_index([("case_number", ASCENDING)], unique=True)
    cases.create_index([("store_id", ASCENDING), ("status", ASCENDING)])
    written = [{"_id": f"c{i}", "case_number": f"CL-20261125-{i:06d}", "store_id": "SH-XH-001", "status": "assigned",
                "submitted_at": datetime(2026, 11, 25, 8, i, tzinfo=timezone.utc), "timeline": [{"n": i}],
                "note": "毛巾不干净"} for i in range(25)]
    cases.insert_many(written)
    mongo_client[f"{prefix}_routing"]["migrations"].insert_one({"_id": "indexes:CaseRepository", "version": 3,
                                                                "fingerprint": "abc"})
    mongo_client[f"{prefix}_notify"]["deliveries"].insert_one({"_id": "d1", "status": "sent"})
    mongo_client[f"{prefix}x_other"]["things"].insert_one({"_id": 1})  # not this deployment's
    session, vhost = broker
    queue = f"{MANAGEMENT}/api/queues/{urllib.parse.quote(vhost, safe='')}/evt-routing-case_routed--notify.on"
    assert session.put(queue, json={"durable": True}).status_code in (201, 204)

    env = dict(os.environ, MONGO_URI=mongo_uri, MONGO_DB_PREFIX=prefix, BACKUP_DIR=str(tmp_path),
               RABBITMQ_MANAGEMENT_URL=MANAGEMENT, RABBITMQ_MANAGEMENT_USER=session.auth[0],
               RABBITMQ_MANAGEMENT_PASSWORD=session.auth[1], RABBITMQ_VHOST=vhost, BACKUP_RETENTION_DAYS="14")
    assert "done" in backup_command("once", env=env)
    (stamp,) = [p.name for p in tmp_path.iterdir()]
    manifest = json.loads((tmp_path / stamp / "manifest.json").read_text())
    assert manifest["databases"] == {f"{prefix}_notify": {"deliveries": 1},
                                     f"{prefix}_routing": {"cases": 25, "migrations": 1}}
    assert stamp in backup_command("list", env=env)

    # the damage: documents lost and changed, an index gone, the queue deleted
    cases.delete_many({"_id": {"$in": ["c1", "c2"]}})
    cases.update_one({"_id": "c3"}, {"$set": {"status": "closed"}})
    cases.drop_index("store_id_1_status_1")
    mongo_client[f"{prefix}_notify"].drop_collection("deliveries")
    assert session.delete(queue).status_code == 204

    restored = json.loads(backup_command("restore", stamp, env=env))
    assert restored["mongo"][f"{prefix}_routing"] == {"cases": 25, "migrations": 1}
    assert list(cases.find({}, sort=[("_id", ASCENDING)])) == sorted(written, key=lambda d: d["_id"])
    indexes = cases.index_information()
    assert indexes["case_number_1"]["unique"] and "store_id_1_status_1" in indexes
    assert mongo_client[f"{prefix}_routing"]["migrations"].find_one({})["version"] == 3
    assert mongo_client[f"{prefix}_notify"]["deliveries"].find_one({"_id": "d1"})["status"] == "sent"
    assert session.get(queue).json()["durable"] is True
    for name in (f"{prefix}_routing", f"{prefix}_notify", f"{prefix}x_other"):
        mongo_client.drop_database(name)
