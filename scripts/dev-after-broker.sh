#!/usr/bin/env bash
# `make dev`: run a service once the broker accepts AMQP connections. While a RabbitMQ node
# boots (seconds to tens of seconds) every service would otherwise retry and say so; this
# waits without a word, and only says something if the broker never comes.
set -euo pipefail
port=${OFFLOAD_DEV_AMQP_PORT:-5672}
wait_seconds=${OFFLOAD_DEV_BROKER_WAIT:-120}
deadline=$((SECONDS + wait_seconds))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  if ((SECONDS > deadline)); then
    echo "no broker on 127.0.0.1:$port after ${wait_seconds}s; starting $1 anyway (it retries on its own)" >&2
    break
  fi
  sleep 0.2
done
exec "$@"
