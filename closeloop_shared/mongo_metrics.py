"""MongoDB round trips of this process, counted by pymongo's command monitoring and
exported on /metrics: `closeloop_mongo_commands_total{command, outcome}`.

Round trips per case are what scale (issue 13): a replica set or a busier database
multiplies each of them, so every service reports how many it makes, by command
(find, insert, update, findAndModify, aggregate, getMore, ...). Server heartbeats are
not commands here (pymongo reports them to other listeners), so the count is the
service's own work plus its readiness pings. Registered once per process, before the
first MongoClient is made (deploy/serve.py); command names are a small fixed set, so
the label stays low-cardinality."""
from prometheus_client import Counter
from pymongo import monitoring

COMMANDS = Counter("closeloop_mongo_commands", "MongoDB commands sent (round trips), by command name",
                   ["command", "outcome"])


class CommandCounter(monitoring.CommandListener):
    def started(self, event):
        pass

    def succeeded(self, event):
        COMMANDS.labels(event.command_name, "ok").inc()

    def failed(self, event):
        COMMANDS.labels(event.command_name, "failed").inc()


_installed = []


def install():
    """Count every command of every MongoClient made after this call in this process."""
    if not _installed:
        monitoring.register(CommandCounter())
        _installed.append(True)
