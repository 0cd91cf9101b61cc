"""Storage for nameko services: one MongoClient per container, a fresh small repository
object per worker (the nameko-examples pattern). Each service owns one database,
`{MONGO_DB_PREFIX}_{service_name}`, and never reads another service's."""
from nameko.extensions import DependencyProvider
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError

from closeloop_shared.config import MONGO_DB_PREFIX, MONGO_URI, setting


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


class Repository(DependencyProvider):
    """`cases = Repository(CaseRepository)` hands each worker `CaseRepository(db)`.

    The repository class may define `ensure_indexes(db)`; it runs once at start-up
    (unindexed queries are slow on every server and painfully so on the stand-in).
    """

    def __init__(self, repository_class, **kwargs):
        self.repository_class = repository_class
        super().__init__(**kwargs)

    def setup(self):
        self.client, self.database = connect_service_db(self.container.config, self.container.service_name)
        ensure_indexes = getattr(self.repository_class, "ensure_indexes", None)
        if ensure_indexes:
            ensure_indexes(self.database)

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
