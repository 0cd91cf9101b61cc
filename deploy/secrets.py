"""Secrets for a compose deployment, generated on the machine that runs it.

    python -m deploy.secrets init [--dir secrets] [--env .env] [--force]

writes
    .env                               every password docker-compose.yml reads, random
                                       (laid out as .env.example; edit its SMTP_* lines)
    secrets/rabbitmq-definitions.json  RabbitMQ's users (salted SHA-256 hashes), vhost and
                                       permissions (deploy/broker_users.py), loaded by the
                                       broker at every start
    secrets/mongo-keyfile              the replica set's internal key
    secrets/jwt-signing.pem            the staff-token signing key (routing only)
    secrets/jwt-public.jwks.json       its public key, for every service

An existing .env is kept (its passwords are reused) and so are an existing keyfile and
key pair; the definitions are always written again from .env and the code, so re-run
this after changing a RabbitMQ password or BUS_QUEUE_TYPE in .env or after an upgrade
that adds a queue, then `docker compose restart rabbitmq`. --force starts over: new passwords and keys
(MongoDB keeps the users it created on its first start, with their old passwords).

Who can read what: .env and the directory are the owner's alone (600 / 700); inside the
directory the files the containers read as their own non-root users (the definitions,
the public keys, routing's signing key) are 644, since a bind mount keeps the host's
owner; the keyfile stays 600 (the mongo container copies it as root).
"""
import os

os.environ.setdefault("EVENTLET_TESTS", "1")  # silences eventlet's banner (nameko is imported below)

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import secrets as random  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from closeloop_shared.config import BUS_QUEUE_TYPE, DEFAULTS, MONGO_DB_PREFIX  # noqa: E402
from closeloop_shared.tokens import write_key_pair  # noqa: E402
from deploy import broker_users  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
PLACEHOLDER = "change-me"  # what .env.example has where init puts a random secret

DEFINITIONS = "rabbitmq-definitions.json"
MONGO_KEYFILE = "mongo-keyfile"
SIGNING_KEY = "jwt-signing.pem"
PUBLIC_KEYS = "jwt-public.jwks.json"


def mongo_database(service):
    """The database a service owns, and the only one its MongoDB user may use."""
    return f"{DEFAULTS[MONGO_DB_PREFIX]}_{service}"


def mongo_password_variable(service):
    return f"MONGO_{service.upper()}_PASSWORD"


def generated_variables():
    """The .env variables this command fills with random values."""
    return ["MONGO_INITDB_ROOT_PASSWORD",
            *map(mongo_password_variable, broker_users.SERVICES),
            *(user.password_variable for user in broker_users.users()),
            "GRAFANA_ADMIN_PASSWORD"]


def new_password():
    # URL-safe (A-Z a-z 0-9 - _): goes into AMQP and MongoDB URIs and .env unquoted.
    return random.token_urlsafe(24)


def read_env(path):
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def render_env(template, values):
    """The template (.env.example) with each generated variable's value replaced."""
    lines = []
    for line in template.splitlines():
        key, sep, _ = line.partition("=")
        if sep and not line.lstrip().startswith("#") and key.strip() in values:
            line = f"{key.strip()}={values[key.strip()]}"
        lines.append(line)
    missing = [key for key in values if not any(line.startswith(f"{key}=") for line in lines)]
    return "\n".join(lines + [f"{key}={values[key]}" for key in missing]) + "\n"


def write_private(path, text, mode=0o600):
    """Write `text` to a file that is `mode` from its first byte."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=mode)
    path.chmod(mode)  # touch's mode is filtered by the umask
    path.write_text(text, encoding="utf-8")


def mongo_keyfile():
    """756 random bytes, base64: 1008 characters (mongod accepts 6 to 1024)."""
    return base64.b64encode(random.token_bytes(756)).decode() + "\n"


class SecretsError(Exception):
    pass


def init(secrets_dir="secrets", env_path=".env", force=False, out=print):
    secrets_dir, env_path = Path(secrets_dir), Path(env_path)
    wanted = generated_variables()

    if env_path.exists() and not force:
        values = read_env(env_path)
        missing = [key for key in wanted if not values.get(key)]
        placeholders = [key for key in wanted if values.get(key) == PLACEHOLDER]
        problems = [*([f"has no {', '.join(missing)}"] if missing else []),
                    *([f"still has the .env.example placeholder for {', '.join(placeholders)}"]
                      if placeholders else [])]
        if problems:
            raise SecretsError(f"{env_path} {' and '.join(problems)}: set them, "
                               "or start over with --force (all new passwords)")
        out(f"{env_path}: kept (it exists; --force replaces it)")
    else:
        values = {key: new_password() for key in wanted}
        write_private(env_path, render_env(ENV_EXAMPLE.read_text(encoding="utf-8"), values))
        out(f"{env_path}: wrote {len(values)} random passwords (mode 600); "
            "set SMTP_* to your mail relay")

    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)

    # the work queues' type is part of the definitions: the broker declares them at boot
    queue_type = read_env(env_path).get(BUS_QUEUE_TYPE) or DEFAULTS[BUS_QUEUE_TYPE]
    definitions = broker_users.definitions(values, queue_type=queue_type)
    write_private(secrets_dir / DEFINITIONS, json.dumps(definitions, indent=2) + "\n", mode=0o644)
    names = ", ".join(user["name"] for user in definitions["users"])
    out(f"{secrets_dir / DEFINITIONS}: RabbitMQ users {names} (deploy/broker_users.py)")

    keyfile = secrets_dir / MONGO_KEYFILE
    if keyfile.exists() and not force:
        out(f"{keyfile}: kept")
    else:
        write_private(keyfile, mongo_keyfile())
        out(f"{keyfile}: wrote a new replica-set key (mode 600)")

    signing, public = secrets_dir / SIGNING_KEY, secrets_dir / PUBLIC_KEYS
    if signing.exists() and public.exists() and not force:
        out(f"{signing}, {public}: kept")
    else:
        signing.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        kid = write_key_pair(signing, public)
        signing.chmod(0o644)  # read by routing's non-root user; the directory is 700
        out(f"{signing}, {public}: new staff-token signing key {kid}")
    out("done: docker compose up -d")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deploy.secrets",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    init_parser = commands.add_parser("init", help="generate .env and secrets/ (keeps what exists)")
    init_parser.add_argument("--dir", default="secrets", help="where the secret files go (default: secrets)")
    init_parser.add_argument("--env", default=".env", help="the env file compose reads (default: .env)")
    init_parser.add_argument("--force", action="store_true",
                             help="replace an existing .env and every secret with new ones")
    args = parser.parse_args(argv)
    try:
        init(args.dir, args.env, force=args.force)
    except SecretsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
