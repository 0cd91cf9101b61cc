"""MongoDB round trips of this process, counted by pymongo's command monitoring and
exported on /metrics: `closeloop_mongo_commands_total{command, collection, outcome}`.

Round trips per case are what scale (issue 13): a replica set or a busier database
multiplies each of them, so every service reports how many it makes, by command
(find, insert, update, findAndModify, aggregate, getMore, ...) and collection (which
names the use case that makes them). Server heartbeats are not commands here (pymongo
reports them to other listeners), so the count is the service's own work plus its
readiness pings. Registered once per process, before the first MongoClient is made
(deploy/serve.py); command and collection names are small fixed sets, so the labels stay
low-cardinality."""
from prometheus_client import Counter
from pymongo import monitoring

COMMANDS = Counter("closeloop_mongo_commands", "MongoDB commands sent (round trips), by command and collection",
                   ["command", "collection", "outcome"])


def collection_of(command_name, command):
    """The collection a command works on ('' for database-level commands such as ping or
    commitTransaction); getMore names it in its own field."""
    target = command.get("collection") if command_name == "getMore" else command.get(command_name)
    return target if isinstance(target, str) else ""


class CommandCounter(monitoring.CommandListener):
    """started() sees the command, succeeded()/failed() only its request id: the
    collection waits in between (pymongo calls both from the caller's own thread)."""

    def __init__(self):
        self._collections = {}

    def started(self, event):
        self._collections[(event.connection_id, event.request_id)] = collection_of(
            event.command_name, event.command)

    def _count(self, event, outcome):
        collection = self._collections.pop((event.connection_id, event.request_id), "")
        COMMANDS.labels(event.command_name, collection, outcome).inc()

    def succeeded(self, event):
        self._count(event, "ok")

    def failed(self, event):
        self._count(event, "failed")


_installed = []


def install():
    """Count every command of every MongoClient made after this call in this process."""
    if not _installed:
        monitoring.register(CommandCounter())
        _installed.append(True)
