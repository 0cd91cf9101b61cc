"""Storage for nameko services: one MongoClient per container, a fresh small repository
object per worker (the nameko-examples pattern). Each service owns one database,
`{MONGO_DB_PREFIX}_{service_name}`, and never reads another service's."""
import hashlib
import json
import logging
import time
from datetime import timedelta

from nameko.extensions import DependencyProvider
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError

from closeloop_shared.clock import utcnow
from closeloop_shared.config import MONGO_DB_PREFIX, MONGO_URI, setting
from closeloop_shared.leases import Leases

log = logging.getLogger(__name__)


def connect(uri):
    # tz_aware: datetimes come back as aware UTC, the same type the domain works in.
    return MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)


def insert_new(collection, document):
    """Insert unless a unique index says it is already there; True if inserted. How
    every idempotent consumer turns a redelivered message into a no-op."""
    try:
        collection.insert_one(document)
        return True
    except DuplicateKeyError:
        return False


def database_name(config, service_name):
    return f"{setting(config, MONGO_DB_PREFIX)}_{service_name}"


def connect_service_db(config, service_name):
    """(client, the service's own database)."""
    client = connect(setting(config, MONGO_URI))
    return client, client[database_name(config, service_name)]


# -- index migrations: run once per change, not at every start -----------------------------
#
# A repository's `ensure_indexes(db)` says which indexes its collections need. At start a
# service first runs it against a recording stand-in of the database: that gives the
# plan (collection, keys, options of every create_index) and its fingerprint, and runs
# the function's other start-up effects (the outbox metric series) without touching
# MongoDB. The service's own `migrations` collection holds one record per repository,
# `indexes:<class>`: the fingerprint applied, a version counting the migrations, when and
# by whom. Only a changed plan builds indexes, and only one replica builds them: it takes
# the record under a lease (renewed while the builds run); the others wait for the new
# fingerprint, or take over if the builder dies and its lease runs out.

MIGRATIONS = "migrations"
MIGRATION_LEASE = timedelta(seconds=30)
MIGRATION_POLL_SECONDS = 0.2


class UnplannableIndexes(RuntimeError):
    """ensure_indexes did something other than create indexes (it cannot be planned)."""


class _PlannedCollection:
    def __init__(self, database, name, plan):
        self.database, self.name, self._plan = database, name, plan

    def create_index(self, keys, **options):
        keys = [(keys, 1)] if isinstance(keys, str) else [tuple(key) for key in keys]
        self._plan.append({"collection": self.name, "keys": keys, "options": options})
        return options.get("name") or "_".join(f"{field}_{direction}" for field, direction in keys)

    def __getattr__(self, name):
        raise UnplannableIndexes(f"{self.name}.{name}")


class _PlannedDatabase:
    def __init__(self, name, plan):
        self.name, self._plan = name, plan

    def __getitem__(self, name):
        return _PlannedCollection(self, name, self._plan)

    get_collection = __getitem__

    def __getattr__(self, name):
        raise UnplannableIndexes(name)


def index_plan(ensure_indexes, database_name):
    """What `ensure_indexes` would create, without a server: [{collection, keys, options}]."""
    plan = []
    ensure_indexes(_PlannedDatabase(database_name, plan))
    return plan


def fingerprint(plan):
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


def migrate_indexes(db, part, ensure_indexes, clock=utcnow, lease=MIGRATION_LEASE, sleep=time.sleep):
    """Bring `part`'s indexes to what `ensure_indexes` plans, once across replicas.
    True if this call built them, False if they were current (or another replica built
    them meanwhile)."""
    try:
        wanted = fingerprint(index_plan(ensure_indexes, db.name))
    except UnplannableIndexes as exc:  # not a plain index plan: as before, at every start
        log.warning("indexes not plannable, created at start", extra={"part": part, "call": str(exc)})
        ensure_indexes(db)
        return True
    records, record_id = db[MIGRATIONS], f"indexes:{part}"
    leases = Leases(records, lease, clock)
    while True:
        record = records.find_one({"_id": record_id})
        if record is not None and record.get("fingerprint") == wanted:
            return False
        if record is None:
            insert_new(records, {"_id": record_id, "version": 0, "fingerprint": None})
        held = leases.claim_by_id(record_id, due={"fingerprint": {"$ne": wanted}})
        if held is None:  # another replica is building them (or just did)
            sleep(MIGRATION_POLL_SECONDS)
            continue
        started = clock()
        with leases.hold(held):
            ensure_indexes(db)
        leases.release(held, {"$set": {"fingerprint": wanted, "migrated_at": clock(),
                                       "migrated_by": held["lease_owner"]},
                              "$inc": {"version": 1}})
        log.info("index migration applied", extra={
            "part": part, "fingerprint": wanted, "seconds": round((clock() - started).total_seconds(), 3)})
        return True


class Repository(DependencyProvider):
    """`cases = Repository(CaseRepository)` hands each worker `CaseRepository(db)`.

    The repository class may define `ensure_indexes(db)`; its indexes are built by an
    index migration (migrate_indexes): once when they change, by one replica (unindexed
    queries are slow on every server and painfully so on the stand-in).
    """

    def __init__(self, repository_class, **kwargs):
        self.repository_class = repository_class
        super().__init__(**kwargs)

    def setup(self):
        self.client, self.database = connect_service_db(self.container.config, self.container.service_name)
        ensure_indexes = getattr(self.repository_class, "ensure_indexes", None)
        if ensure_indexes:
            migrate_indexes(self.database, self.repository_class.__qualname__, ensure_indexes)

    def stop(self):
        self.client.close()

    def kill(self):
        self.client.close()

    def get_dependency(self, worker_ctx):
        return self.repository_class(self.database)


class MongoHealth(DependencyProvider):
    """A callable that pings the service's MongoDB (for /health)."""

    def setup(self):
        self.client = connect(setting(self.container.config, MONGO_URI))

    def stop(self):
        self.client.close()

    def kill(self):
        self.client.close()

    def get_dependency(self, worker_ctx):
        return lambda: self.client.admin.command("ping")
