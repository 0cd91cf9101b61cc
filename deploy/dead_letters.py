"""Look at, and replay, what the services dead-lettered.

    python -m deploy.dead_letters list      # reason, service and routing key of each
    python -m deploy.dead_letters replay    # republish each to where it first went

Replay after fixing the cause (a store added to the org chart, a bug fixed): each
message goes back to its original exchange and routing key with its original body,
so the consumer sees it as new. Messages still failing come back here."""
import argparse
import os
import sys

from kombu import Connection

from closeloop_shared.bus import DEAD_LETTER_QUEUE

REASON, SERVICE = "x-closeloop-reason", "x-closeloop-service"
EXCHANGE, ROUTING_KEY = "x-closeloop-exchange", "x-closeloop-routing-key"


def _taken(connection, limit):
    """Up to `limit` dead letters, unacknowledged (they stay the queue's until acked)."""
    queue = DEAD_LETTER_QUEUE(connection.default_channel)
    queue.declare()
    letters = []
    while limit is None or len(letters) < limit:
        message = queue.get(no_ack=False)
        if message is None:
            break
        letters.append(message)
    return letters


def replay(amqp_uri, limit=None):
    with Connection(amqp_uri) as connection:
        producer = connection.Producer()
        letters = _taken(connection, limit)
        for message in letters:
            headers = dict(message.headers)
            exchange, routing_key = headers.pop(EXCHANGE, ""), headers.pop(ROUTING_KEY, "")
            for key in (REASON, SERVICE, "x-closeloop-attempts"):
                headers.pop(key, None)
            producer.publish(message.body, exchange=exchange, routing_key=routing_key, headers=headers,
                             content_type=message.content_type,
                             content_encoding=message.content_encoding, delivery_mode=2,
                             user_id=connection.userid)
            message.ack()
    return len(letters)


def show(amqp_uri, limit=None):
    """Print the dead letters and leave them where they are."""
    with Connection(amqp_uri) as connection:
        letters = _taken(connection, limit)
        for message in letters:
            headers = message.headers
            print(f"{headers.get(SERVICE, '?'):<10} {headers.get(ROUTING_KEY, '?'):<24} "
                  f"{headers.get(REASON, '')[:160]}")
        for message in letters:
            message.requeue()
    return len(letters)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("list", "replay"))
    parser.add_argument("--amqp-uri", default=os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    if args.command == "list":
        print(f"{show(args.amqp_uri, args.limit)} dead letter(s)")
    else:
        print(f"replayed {replay(args.amqp_uri, args.limit)} dead letter(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
