"""deploy/identity.py against the MongoDB-protocol server: the first admin of a new
deployment, and an integration's API keys, written through routing's repositories with
their events left in the outbox for routing's relay."""
import io
import os
import subprocess
import sys

import pytest

from closeloop_shared import tokens
from closeloop_shared.auth import SNAPSHOT_ID
from closeloop_shared.clock import utcnow
from deploy import identity as cli
from services.routing import accounts
from tests.fixtures import ROOT

pytestmark = pytest.mark.integration

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable


@pytest.fixture
def identity(mongo_uri, mongo_prefix, monkeypatch, capsys):
    """identity(*args, stdin=None, process=False): the command run as `python -m
    deploy.identity` in a process of its own when `process`, else its main() in this one
    with the same environment, stdin, output and exit status (a process costs some 1.5 s
    of imports: each test runs its first commands as processes, the rest here)."""
    env = {"MONGO_URI": mongo_uri, "MONGO_DB_PREFIX": mongo_prefix}

    def run(*args, stdin=None, process=False):
        if process:
            child_env = dict(os.environ, **env)
            child_env.pop("ORG_SEED_PATH", None)
            return subprocess.run([PYTHON, "-m", "deploy.identity", *args], input=stdin, env=child_env,
                                  cwd=ROOT, capture_output=True, text=True, timeout=60)
        with monkeypatch.context() as patched:
            for name, value in env.items():
                patched.setenv(name, value)
            patched.delenv("ORG_SEED_PATH", raising=False)
            patched.setattr(sys, "stdin", io.StringIO(stdin or ""))
            capsys.readouterr()
            try:
                returncode = cli.main(list(args))
            except SystemExit as exit:  # argparse refusing the command line
                returncode = exit.code
            out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["deploy.identity", *args], returncode, out, err)
    return run


@pytest.fixture
def routing_db(mongo_client, mongo_prefix):
    return mongo_client[f"{mongo_prefix}_routing"]


def test_create_admin_seeds_the_organisation_and_sets_a_password(identity, routing_db):
    done = identity("create-admin", "first-admin", "--name", "首位管理员", "--password-stdin",
                    stdin="correct horse battery\n", process=True)
    assert done.returncode == 0, done.stderr
    assert "first-admin" in done.stdout

    account = routing_db["accounts"].find_one({"_id": "first-admin"})
    assert accounts.check_login(account, "correct horse battery", utcnow()).ok
    assert not accounts.check_login(account, "wrong password!!", utcnow()).ok

    snapshot = routing_db["org"].find_one({"_id": SNAPSHOT_ID})
    admin = next(s for s in snapshot["staff"] if s["staff_id"] == "first-admin")
    assert admin["role"] == "admin"
    assert snapshot["outbox_pending"] is True
    assert [e["type"] for e in snapshot["outbox"]] == ["org_changed"]

    # Running it again only resets the password; a weak one is refused.
    again = identity("create-admin", "first-admin", "--name", "x", "--password-stdin", stdin="short\n",
                     process=True)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert identity("set-password", "nobody", "--password-stdin", stdin="long enough pass\n").returncode == 2


def test_issue_two_keys_refuse_a_third_and_revoke(identity, routing_db):
    issued = identity("issue-key", "pos-sh", "--name", "上海 POS", "--brand", "yueyan",
                      "--permission", "feedback:submit", "--store", "SH-XH-001", "--bus-user", "pos",
                      process=True)
    assert issued.returncode == 0, issued.stderr
    assert "only" in issued.stdout
    presented = tokens.parse_api_key(issued.stdout.strip().splitlines()[-1])

    client = routing_db["integrations"].find_one({"_id": "pos-sh"})
    assert client["store_ids"] == ["SH-XH-001"] and client["bus_user"] == "pos"
    assert client["outbox_pending"] is True
    [stored] = client["keys"]
    assert stored["key_id"] == presented.key_id
    assert tokens.api_key_matches(presented, stored["digest"])

    assert identity("issue-key", "pos-sh").returncode == 0
    third = identity("issue-key", "pos-sh")
    assert third.returncode == 2
    assert "revoke one" in third.stderr

    listed = identity("list-keys")
    assert listed.returncode == 0 and presented.key_id in listed.stdout
    assert stored["digest"] not in listed.stdout

    revoked = identity("revoke-key", "pos-sh", presented.key_id)
    assert revoked.returncode == 0, revoked.stderr
    key = next(k for k in routing_db["integrations"].find_one({"_id": "pos-sh"})["keys"]
               if k["key_id"] == presented.key_id)
    assert key["revoked_at"] is not None
    assert identity("revoke-key", "pos-sh", "nope").returncode == 2
    assert identity("issue-key", "pos-sh").returncode == 0  # a slot is free again
