#!/usr/bin/env bash
# Make sure RabbitMQ answers on 127.0.0.1:5672 with its management API on 15672
# (nameko's test fixtures create a vhost per test through it): start it if it is
# stopped, install it if it is missing.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  for _ in $(seq 1 90); do listening "$1" && return 0; sleep 1; done
  echo "RabbitMQ: port $1 did not open" >&2; return 1
}

if ! listening 5672; then
  if ! command -v rabbitmq-server >/dev/null; then
    echo "RabbitMQ: installing rabbitmq-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  if ! listening 5672; then
    echo "RabbitMQ: starting"
    rabbitmq-server -detached
  fi
fi
wait_for 5672
if ! listening 15672; then
  echo "RabbitMQ: enabling the management plugin"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  wait_for 15672
fi
echo "RabbitMQ: ready on 127.0.0.1:5672"
