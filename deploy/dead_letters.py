"""Look at, and replay, what the services dead-lettered.

    python -m deploy.dead_letters list                 # service, routing key, age and reason of each
    python -m deploy.dead_letters replay --dry-run     # what a replay would send, and where
    python -m deploy.dead_letters replay               # republish each to where it first went
    ... [--service intake] [--reason "unknown store"] [--older-than 3600] [--newer-than 86400] [--limit N]

Replay after fixing the cause (a store added to the org chart, a bug fixed): each
message goes back to its original exchange and routing key with its original body and
headers, so the consumer sees it as new. Replay is safe to interrupt: a dead letter
leaves the queue only once the broker has confirmed its republication (publisher
confirms) and routed it to a queue (`mandatory`: a message nobody would receive is
returned, reported and kept). Messages that do not match the filters, and any not
replayed, stay where they are. Messages still failing come back here.

Filters: --service (the service that dead-lettered it), --reason (a case-insensitive
part of the reason), --older-than / --newer-than (seconds since it was dead-lettered;
letters from before the time was recorded have no age and match no age filter).

Replayed messages are published as the AMQP user of --amqp-uri; the original submitter
(the broker-validated user_id) stays in the header x-closeloop-user-id."""
import argparse
import os
import sys
import time
from dataclasses import dataclass

from kombu import Connection, Producer

from closeloop_shared.bus import (
    ATTEMPTS_HEADER, DEAD_LETTER_QUEUE, DEAD_LETTERED_AT_HEADER, EXCHANGE_HEADER, REASON_HEADER,
    ROUTING_KEY_HEADER, SERVICE_HEADER)

REASON, SERVICE = REASON_HEADER, SERVICE_HEADER
EXCHANGE, ROUTING_KEY = EXCHANGE_HEADER, ROUTING_KEY_HEADER
REPLAYED_AT_HEADER = "x-closeloop-replayed-at"
DROPPED_ON_REPLAY = (REASON_HEADER, SERVICE_HEADER, EXCHANGE_HEADER, ROUTING_KEY_HEADER,
                     DEAD_LETTERED_AT_HEADER, ATTEMPTS_HEADER)


@dataclass
class Filters:
    service: str = None
    reason: str = None
    older_than: float = None  # seconds
    newer_than: float = None

    def match(self, headers, now):
        if self.service and headers.get(SERVICE) != self.service:
            return False
        if self.reason and self.reason.lower() not in str(headers.get(REASON, "")).lower():
            return False
        if self.older_than is not None or self.newer_than is not None:
            age = age_of(headers, now)
            if age is None:
                return False
            if self.older_than is not None and age < self.older_than:
                return False
            if self.newer_than is not None and age > self.newer_than:
                return False
        return True


def age_of(headers, now):
    at = headers.get(DEAD_LETTERED_AT_HEADER)
    return None if at is None else max(0.0, now - float(at))


@dataclass
class Outcome:
    matched: int = 0
    replayed: int = 0
    unroutable: int = 0
    failed: int = 0
    left: int = 0  # not matching the filters


def _taken(channel, limit):
    """Dead letters, unacknowledged: they stay the queue's until acked, and the broker
    takes back whatever this connection did not ack when it closes."""
    queue = DEAD_LETTER_QUEUE(channel)
    queue.declare()
    letters = []
    while limit is None or len(letters) < limit:
        message = queue.get(no_ack=False)
        if message is None:
            break
        letters.append(message)
    return letters


def _describe(message, now):
    headers = message.headers or {}
    age = age_of(headers, now)
    age_text = "?" if age is None else f"{age / 3600:.1f}h" if age >= 3600 else f"{age:.0f}s"
    return (f"{headers.get(SERVICE, '?'):<10} {headers.get(ROUTING_KEY, '?'):<24} {age_text:>7}  "
            f"{str(headers.get(REASON, ''))[:150]}")


def _destination(message):
    headers = message.headers or {}
    return headers.get(EXCHANGE, ""), headers.get(ROUTING_KEY, "")


def replay(amqp_uri, limit=None, filters=None, dry_run=False, out=print):
    """Republish matching dead letters; the number replayed (or, dry, that would be)."""
    outcome = replay_letters(amqp_uri, limit, filters, dry_run, out)
    return outcome.matched if dry_run else outcome.replayed


def replay_letters(amqp_uri, limit=None, filters=None, dry_run=False, out=print):
    """Republish matching dead letters; returns an Outcome."""
    filters, outcome, now = filters or Filters(), Outcome(), time.time()
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        user = connection.userid
        returned = []
        producer = Producer(connection.channel(), on_return=lambda exc, exchange, routing_key, message:
                            returned.append((exchange, routing_key, str(exc))))
        letters = _taken(connection.channel(), limit)
        try:
            for message in letters:
                headers = dict(message.headers or {})
                if not filters.match(headers, now):
                    outcome.left += 1
                    continue
                outcome.matched += 1
                exchange, routing_key = _destination(message)
                if dry_run:
                    out(f"would replay  {_describe(message, now)}  -> {exchange or '(default)'} / {routing_key}")
                    continue
                for key in DROPPED_ON_REPLAY:
                    headers.pop(key, None)
                headers[REPLAYED_AT_HEADER] = now
                returned.clear()
                try:
                    producer.publish(message.body, exchange=exchange, routing_key=routing_key, headers=headers,
                                     content_type=message.content_type,
                                     content_encoding=message.content_encoding, delivery_mode=2,
                                     mandatory=True, user_id=user, retry=False)
                except Exception as exc:  # nacked or the connection went: keep it, stop here
                    outcome.failed += 1
                    out(f"NOT replayed ({type(exc).__name__}: {exc}); kept. Stopping.  {_describe(message, now)}")
                    break
                if returned:  # confirmed, but routed to no queue: keep it
                    outcome.unroutable += 1
                    out(f"unroutable ({returned[0][2]}), kept:  {_describe(message, now)}")
                    continue
                message.ack()  # only now: the broker confirmed and routed the copy
                outcome.replayed += 1
        finally:
            for message in letters:
                if not message.acknowledged:
                    message.requeue()
    return outcome


def show(amqp_uri, limit=None, filters=None, out=print):
    """Print the matching dead letters and leave them all where they are."""
    filters, now, shown = filters or Filters(), time.time(), 0
    with Connection(amqp_uri) as connection:
        letters = _taken(connection.default_channel, limit)
        try:
            for message in letters:
                if filters.match(message.headers or {}, now):
                    out(_describe(message, now))
                    shown += 1
        finally:
            for message in letters:
                message.requeue()
    return shown


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("list", "replay"))
    parser.add_argument("--amqp-uri", default=os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--limit", type=int, help="look at no more than this many dead letters")
    parser.add_argument("--service", help="only those this service dead-lettered")
    parser.add_argument("--reason", help="only those whose reason contains this text")
    parser.add_argument("--older-than", type=float, metavar="SECONDS")
    parser.add_argument("--newer-than", type=float, metavar="SECONDS")
    parser.add_argument("--dry-run", action="store_true", help="replay: only say what would be sent")
    args = parser.parse_args(argv)
    filters = Filters(args.service, args.reason, args.older_than, args.newer_than)
    if args.command == "list":
        print(f"{show(args.amqp_uri, args.limit, filters)} dead letter(s)")
        return 0
    outcome = replay_letters(args.amqp_uri, args.limit, filters, dry_run=args.dry_run)
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {outcome.matched if args.dry_run else outcome.replayed} dead letter(s); "
          f"{outcome.unroutable} unroutable and {outcome.failed} failed (kept); "
          f"{outcome.left} not matching the filters (kept)")
    return 1 if outcome.unroutable or outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
