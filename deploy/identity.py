"""Ops commands for routing's identity data: the first admin, password resets and
integration API keys, written straight into routing's database through routing's own
repositories and flows (no broker needed: the events a write causes wait in the written
document's outbox and routing's relay publishes them within OUTBOX_RELAY_INTERVAL_SECONDS).

    python -m deploy.identity create-admin ops-admin --name 系统管理员 [--password-stdin]
    python -m deploy.identity set-password STAFF_ID [--password-stdin]
    python -m deploy.identity issue-key pos-sh --name "POS" --brand yueyan \\
        --permission feedback:submit [--permission ...] [--store S ...] [--bus-user pos]
    python -m deploy.identity revoke-key CLIENT_ID KEY_ID
    python -m deploy.identity list-keys

Reads MONGO_URI, MONGO_DB_PREFIX and ORG_SEED_PATH from the environment (defaults:
closeloop_shared.config). Exit code 2, with one line on stderr, when refused.
"""
import argparse
import getpass
import os
import sys
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # nameko's, on import: noise here

from pymongo.errors import ServerSelectionTimeoutError

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.clock import utcnow
from closeloop_shared.config import MONGO_DB_PREFIX, MONGO_URI, ORG_SEED_PATH, setting
from closeloop_shared.contract import Role
from closeloop_shared.mongo import connect_service_db
from services.routing import accounts, identity_flows, integrations, organisation
from services.routing.organisation import OrgRefused
from services.routing.repository import AccountRepository, IntegrationRepository, OrgRepository

REFUSED = 2


class Refused(Exception):
    pass


def _config():
    return {key: os.environ.get(key) for key in (MONGO_URI, MONGO_DB_PREFIX, ORG_SEED_PATH)}


def _organisation(org_repository, config):
    """routing's organisation, seeded from ORG_SEED_PATH first if routing never started."""
    if org_repository.load() is None:
        org_repository.seed(org.load(setting(config, ORG_SEED_PATH)))
        print(f"organisation seeded from {setting(config, ORG_SEED_PATH)}")
    return org.Organisation.from_snapshot(org_repository.load())


def _read_password(args):
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise Refused("no password on stdin")
        return password
    password = getpass.getpass(f"new password for {args.staff_id}: ")
    if getpass.getpass("again: ") != password:
        raise Refused("the two passwords differ")
    return password


def _set_password(db, organisation_now, args, password=None):
    password = password if password is not None else _read_password(args)
    identity_flows.set_password(AccountRepository(db), organisation_now, args.staff_id, password, utcnow())
    print(f"password set for {args.staff_id} (account unlocked)")


def create_admin(db, config, args):
    repository = OrgRepository(db)
    current = _organisation(repository, config)
    person = current.staff.get(args.staff_id)
    if person is not None and (person.role is not Role.ADMIN or not person.active):
        raise Refused(f"{args.staff_id} exists as {'an inactive ' if not person.active else ''}"
                      f"{person.role.value}, not an active admin")
    password = _read_password(args)
    accounts.hash_password(password)  # a weak password is refused before the organisation changes
    if person is None:
        current, _ = identity_flows.change_organisation(
            repository, current,
            lambda o: organisation.add_staff(o, args.staff_id, args.name, Role.ADMIN.value, None, args.email),
            utcnow())
        print(f"admin {args.staff_id} added to the organisation (version {current.version}; "
              f"org_changed waits in the outbox for routing's relay)")
    else:
        print(f"admin {args.staff_id} already in the organisation")
    _set_password(db, current, args, password)


def set_password(db, config, args):
    _set_password(db, _organisation(OrgRepository(db), config), args)


def issue_key(db, config, args):
    repository = IntegrationRepository(db)
    IntegrationRepository.ensure_indexes(db)
    now = utcnow()
    if repository.get(args.client_id) is None:
        if not args.brand or not args.permission:
            raise Refused(f"no integration {args.client_id}: give --brand and --permission to create it")
        spec = {"client_id": args.client_id, "name": args.name or args.client_id, "brand_id": args.brand,
                "store_ids": args.store, "permissions": args.permission, "bus_user": args.bus_user}
        identity_flows.create_client(repository, _organisation(OrgRepository(db), config), spec, now)
        print(f"integration {args.client_id} created (brand {args.brand}, "
              f"permissions {', '.join(sorted(args.permission))})")
    client, key, _ = identity_flows.issue_key(repository, args.client_id, now)
    print(f"key {key.key_id} issued for {args.client_id}, expires {client['keys'][-1]['expires_at']:%Y-%m-%d}")
    print("WARNING: the key is shown only this once; store it in the integration's secret store now:")
    print(key.presented)


def revoke_key(db, config, args):
    identity_flows.revoke_key(IntegrationRepository(db), args.client_id, args.key_id, utcnow())
    print(f"key {args.key_id} of {args.client_id} revoked")


def list_keys(db, config, args):
    now = utcnow()
    clients = IntegrationRepository(db).all()
    if not clients:
        print("no integrations")
    for client in clients:
        shown = integrations.view(client, now)  # never a digest
        print(f"{shown['client_id']} ({shown['name']}) brand={shown['brand_id']} "
              f"permissions={','.join(shown['permissions'])} active={shown['active']}")
        for key in shown["keys"]:
            state = "active" if key["active"] else ("revoked" if key["revoked_at"] else "expired")
            expires = f"{key['expires_at']:%Y-%m-%d}" if key["expires_at"] else "never"
            print(f"  {key['key_id']} {state} created {key['created_at']:%Y-%m-%d} expires {expires}")


def parser():
    top = argparse.ArgumentParser(prog="python -m deploy.identity", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

    admin = commands.add_parser("create-admin", help="add an admin to the organisation and set a password")
    admin.add_argument("staff_id")
    admin.add_argument("--name", required=True)
    admin.add_argument("--email")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    admin.set_defaults(run=create_admin)

    password = commands.add_parser("set-password", help="reset a password (also unlocks the account)")
    password.add_argument("staff_id")
    password.add_argument("--password-stdin", action="store_true", help="read the password from stdin (one line)")
    password.set_defaults(run=set_password)

    issue = commands.add_parser("issue-key", help="issue an API key (creating the integration if missing)")
    issue.add_argument("client_id")
    issue.add_argument("--name")
    issue.add_argument("--brand")
    issue.add_argument("--permission", action="append", default=[])
    issue.add_argument("--store", action="append", default=[])
    issue.add_argument("--bus-user")
    issue.set_defaults(run=issue_key)

    revoke = commands.add_parser("revoke-key", help="revoke an integration's API key")
    revoke.add_argument("client_id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=revoke_key)

    listing = commands.add_parser("list-keys", help="list integrations and their keys (never a digest)")
    listing.set_defaults(run=list_keys)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    config = _config()
    client, db = connect_service_db(config, ev.ROUTING)
    try:
        args.run(db, config, args)
    except OrgRefused as refused:
        return _refuse(refused.message)
    except identity_flows.ConcurrentChange as exc:
        return _refuse(str(exc))
    except KeyError as exc:
        return _refuse(f"no active staff member {exc.args[0]}")  # identity_flows.set_password
    except (ValueError, Refused) as exc:
        return _refuse(str(exc))
    except ServerSelectionTimeoutError:
        print(f"cannot reach MongoDB at {setting(config, MONGO_URI)}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


def _refuse(message):
    print(f"refused: {message}", file=sys.stderr)
    return REFUSED


if __name__ == "__main__":
    sys.exit(main())
