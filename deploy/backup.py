"""Backups of a Closeloop deployment, and their restore: every MongoDB database of the
deployment (each collection as gzipped BSON, with its indexes) and RabbitMQ's definitions
(users, vhosts, permissions, exchanges, queues, bindings, policies, from its management
API). The compose `backup` service runs `run`; the restore is the same command, by hand.

    python -m deploy.backup run                  # a backup now, then every BACKUP_INTERVAL_SECONDS
    python -m deploy.backup once                 # one backup, then exit
    python -m deploy.backup list                 # the complete backups, oldest first
    python -m deploy.backup restore STAMP        # MongoDB (collections replaced) and RabbitMQ
    python -m deploy.backup restore STAMP --only mongo     (or rabbitmq)

Settings (environment): MONGO_URI (a user that may read, and to restore write, every
database), MONGO_DB_PREFIX (the databases `<prefix>_*`; default closeloop), BACKUP_DIR
(/backups), BACKUP_RETENTION_DAYS (14), BACKUP_INTERVAL_SECONDS (86400),
RABBITMQ_MANAGEMENT_URL (http://rabbitmq:15672), RABBITMQ_MANAGEMENT_USER and
RABBITMQ_MANAGEMENT_PASSWORD (an administrator), RABBITMQ_VHOST (unset: the whole
broker; set: that vhost's definitions only).

A backup is a directory BACKUP_DIR/<UTC stamp>/ written as <stamp>.partial and renamed
once complete (a crash leaves no half backup that looks whole):
    manifest.json                                 stamp, databases, collections and counts
    mongo/<database>/<collection>.bson.gz         the documents, BSON one after another
    mongo/<database>/<collection>.indexes.json    the indexes (restored with the data: the
                                                  services' index migrations are recorded as
                                                  done in the same dump)
    rabbitmq-definitions.json
Collections are read one after another, not as one snapshot: a document written during
the backup may be in one collection's copy and not another's; the services' outboxes and
idempotent consumers make up the difference after a restore. Messages in flight are not
backed up. Files older than BACKUP_RETENTION_DAYS are deleted after each backup; the
newest backup is always kept."""
import argparse
import base64
import gzip
import json
import logging
import os
import shutil
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

log = logging.getLogger("closeloop.backup")
STAMP = "%Y%m%dT%H%M%SZ"
PARTIAL = ".partial"
SYSTEM_DATABASES = {"admin", "local", "config"}
RAW = CodecOptions(document_class=RawBSONDocument)
INSERT_BATCH = 1000
DEFAULTS = {"MONGO_URI": "mongodb://127.0.0.1:27017/?directConnection=true", "MONGO_DB_PREFIX": "closeloop",
            "BACKUP_DIR": "/backups", "BACKUP_RETENTION_DAYS": "14", "BACKUP_INTERVAL_SECONDS": "86400",
            "RABBITMQ_MANAGEMENT_URL": "http://rabbitmq:15672", "RABBITMQ_MANAGEMENT_USER": "",
            "RABBITMQ_MANAGEMENT_PASSWORD": "", "RABBITMQ_VHOST": ""}


def settings(environ=os.environ):
    """The settings from the environment; an empty value takes the default (compose
    passes unset variables as empty)."""
    return {key: environ.get(key) or default for key, default in DEFAULTS.items()}


# -- MongoDB ----------------------------------------------------------------------------

def deployment_databases(client, prefix):
    return sorted(name for name in client.list_database_names()
                  if name.startswith(f"{prefix}_") and name not in SYSTEM_DATABASES)


def dump_mongo(client, prefix, into):
    """Every collection of the deployment's databases into `into`/<db>/; {db: {collection: n}}."""
    counts = {}
    for name in deployment_databases(client, prefix):
        database = client.get_database(name, codec_options=RAW)
        folder = into / name
        folder.mkdir(parents=True)
        counts[name] = {}
        for collection_name in sorted(database.list_collection_names()):
            if collection_name.startswith("system."):
                continue
            collection = database[collection_name]
            n = 0
            with gzip.open(folder / f"{collection_name}.bson.gz", "wb") as out:
                for document in collection.find({}, sort=[("_id", 1)]):
                    out.write(document.raw)
                    n += 1
            indexes = [{"key": list(spec["key"]), **{k: v for k, v in spec.items() if k not in ("key", "v", "ns")},
                        "name": index_name}
                       for index_name, spec in collection.index_information().items() if index_name != "_id_"]
            (folder / f"{collection_name}.indexes.json").write_text(json_util.dumps(indexes, indent=1))
            counts[name][collection_name] = n
    return counts


def restore_mongo(client, source):
    """Each collection of the backup replaces the live one (dropped, refilled, its
    indexes rebuilt); collections the backup does not have are left alone."""
    restored = {}
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        database = client[folder.name]
        restored[folder.name] = {}
        for dump in sorted(folder.glob("*.bson.gz")):
            collection_name = dump.name[:-len(".bson.gz")]
            collection = database[collection_name]
            collection.drop()
            n, batch = 0, []
            with gzip.open(dump, "rb") as stream:
                for document in bson.decode_file_iter(stream, codec_options=RAW):
                    batch.append(document)
                    if len(batch) == INSERT_BATCH:
                        n += _insert(collection, batch)
            n += _insert(collection, batch)
            for spec in json_util.loads((folder / f"{collection_name}.indexes.json").read_text()):
                key = [tuple(pair) for pair in spec.pop("key")]
                collection.create_index(key, **spec)
            restored[folder.name][collection_name] = n
    return restored


def _insert(collection, batch):
    if not batch:
        return 0
    collection.insert_many(batch, ordered=False)
    n = len(batch)
    batch.clear()
    return n


# -- RabbitMQ ---------------------------------------------------------------------------

def _management(config, method, path, body=None):
    url = config["RABBITMQ_MANAGEMENT_URL"].rstrip("/") + path
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    credentials = f"{config['RABBITMQ_MANAGEMENT_USER']}:{config['RABBITMQ_MANAGEMENT_PASSWORD']}"
    request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _definitions_path(config):
    vhost = config["RABBITMQ_VHOST"]
    return f"/api/definitions/{urllib.parse.quote(vhost, safe='')}" if vhost else "/api/definitions"


def export_rabbitmq(config):
    return _management(config, "GET", _definitions_path(config))


def import_rabbitmq(config, definitions):
    """Loads the definitions (merged: what the broker has beyond them stays)."""
    _management(config, "POST", _definitions_path(config), definitions)


# -- backups on disk ----------------------------------------------------------------------

def stamp_of(moment):
    return moment.astimezone(timezone.utc).strftime(STAMP)


def time_of(stamp):
    return datetime.strptime(stamp, STAMP).replace(tzinfo=timezone.utc)


def complete_backups(directory):
    """The complete backups' stamps, oldest first."""
    found = []
    for path in Path(directory).iterdir() if Path(directory).exists() else ():
        try:
            time_of(path.name)
        except ValueError:
            continue
        if path.is_dir() and (path / "manifest.json").exists():
            found.append(path.name)
    return sorted(found)


def backup_once(config, now):
    """One backup into BACKUP_DIR/<stamp>/; its path."""
    root = Path(config["BACKUP_DIR"])
    stamp = stamp_of(now)
    partial = root / f"{stamp}{PARTIAL}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    client = MongoClient(config["MONGO_URI"], serverSelectionTimeoutMS=10_000)
    try:
        counts = dump_mongo(client, config["MONGO_DB_PREFIX"], partial / "mongo")
    finally:
        client.close()
    definitions = export_rabbitmq(config)
    (partial / "rabbitmq-definitions.json").write_text(json.dumps(definitions, indent=1, ensure_ascii=False))
    manifest = {"stamp": stamp, "databases": counts, "rabbitmq_vhost": config["RABBITMQ_VHOST"] or None,
                "rabbitmq": {kind: len(definitions.get(kind, [])) for kind in ("users", "vhosts", "queues")}}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    final = root / stamp
    partial.rename(final)
    return final


def prune(directory, keep_days, now):
    """Delete backups (and abandoned partial ones) older than keep_days; never the
    newest complete backup. The stamps deleted."""
    root = Path(directory)
    complete = complete_backups(root)
    newest = complete[-1] if complete else None
    removed = []
    for path in sorted(root.iterdir()) if root.exists() else ():
        stamp = path.name[:-len(PARTIAL)] if path.name.endswith(PARTIAL) else path.name
        try:
            taken = time_of(stamp)
        except ValueError:
            continue
        if path.name != newest and now - taken > timedelta(days=keep_days):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path.name)
    return removed


def restore(config, stamp, only=None):
    source = Path(config["BACKUP_DIR"]) / stamp
    if not (source / "manifest.json").exists():
        raise SystemExit(f"no complete backup {stamp} in {config['BACKUP_DIR']} (see: list)")
    result = {}
    if only in (None, "mongo"):
        client = MongoClient(config["MONGO_URI"], serverSelectionTimeoutMS=10_000)
        try:
            result["mongo"] = restore_mongo(client, source / "mongo")
        finally:
            client.close()
    if only in (None, "rabbitmq"):
        import_rabbitmq(config, json.loads((source / "rabbitmq-definitions.json").read_text()))
        result["rabbitmq"] = "definitions loaded"
    return result


def run_forever(config, clock=lambda: datetime.now(timezone.utc), sleep=time.sleep):
    interval = int(config["BACKUP_INTERVAL_SECONDS"])
    while True:
        take_one(config, clock())
        sleep(interval)


def take_one(config, now):
    try:
        path = backup_once(config, now)
        log.info("backup done", extra={"path": str(path)})
        print(f"backup {path.name} done", flush=True)
    except Exception as exc:  # keep the loop going: the next interval tries again
        log.exception("backup failed")
        print(f"backup {stamp_of(now)} FAILED: {exc}", flush=True)
        return False
    for removed in prune(config["BACKUP_DIR"], int(config["BACKUP_RETENTION_DAYS"]), now):
        print(f"deleted {removed} (older than {config['BACKUP_RETENTION_DAYS']} days)", flush=True)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="a backup now, then every BACKUP_INTERVAL_SECONDS")
    commands.add_parser("once", help="one backup, then exit")
    commands.add_parser("list", help="the complete backups, oldest first")
    restoring = commands.add_parser("restore", help="restore a backup (MongoDB collections are replaced)")
    restoring.add_argument("stamp")
    restoring.add_argument("--only", choices=("mongo", "rabbitmq"))
    args = parser.parse_args(argv)
    config = settings()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if args.command == "run":
        run_forever(config)
    elif args.command == "once":
        return 0 if take_one(config, datetime.now(timezone.utc)) else 1
    elif args.command == "list":
        for stamp in complete_backups(config["BACKUP_DIR"]):
            manifest = json.loads((Path(config["BACKUP_DIR"]) / stamp / "manifest.json").read_text())
            documents = sum(n for collections in manifest["databases"].values() for n in collections.values())
            print(f"{stamp}  {len(manifest['databases'])} databases  {documents} documents")
    else:
        print(json.dumps(restore(config, args.stamp, args.only), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
