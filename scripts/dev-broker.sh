#!/usr/bin/env bash
# The broker for `make dev`: use the one answering on the AMQP port, or run a private
# RabbitMQ node (own node name, data under .state/rabbitmq, management plugin on).
set -euo pipefail
cd "$(dirname "$0")/.."

amqp_port=${OFFLOAD_DEV_AMQP_PORT:-5672}
management_port=${OFFLOAD_DEV_MANAGEMENT_PORT:-15672}

if (exec 3<>"/dev/tcp/127.0.0.1/${amqp_port}") 2>/dev/null; then
  echo "a broker already answers on 127.0.0.1:${amqp_port}: using it"
  exec sleep infinity
fi

state="$PWD/.state/rabbitmq"
mkdir -p "$state/mnesia" "$state/log"
echo "[rabbitmq_management,rabbitmq_prometheus]." > "$state/enabled_plugins"
cat > "$state/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:${amqp_port}
management.tcp.port = ${management_port}
management.tcp.ip = 127.0.0.1
prometheus.tcp.ip = 127.0.0.1
collect_statistics_interval = 1000
CONF
# Quorum queues report their depth once per tick (5 s by default): the local autoscaler
# of `make dev` should see a backlog within a second.
echo "[{rabbit, [{quorum_tick_interval, 1000}]}]." > "$state/advanced.config"
export RABBITMQ_NODENAME="offload-dev@localhost"
export RABBITMQ_MNESIA_BASE="$state/mnesia"
export RABBITMQ_LOG_BASE="$state/log"
export RABBITMQ_ENABLED_PLUGINS_FILE="$state/enabled_plugins"
export RABBITMQ_CONFIG_FILE="$state/rabbitmq"
export RABBITMQ_ADVANCED_CONFIG_FILE="$state/advanced.config"
export RABBITMQ_DIST_PORT=${OFFLOAD_DEV_DIST_PORT:-25672}
export HOME=${HOME:-$state}
echo "starting a private RabbitMQ node on 127.0.0.1:${amqp_port} (management http://127.0.0.1:${management_port}, guest/guest)"
# Parked messages expire after the retention the chart sets too (offload_core.topology):
# applied once the node is up, by a process of its own, as the node takes this shell's place.
policy=$(.venv/bin/python -c 'import json; from offload_core.topology import parked_retention_policy as p
d = p(); print(d["name"], d["pattern"], json.dumps(d["definition"], separators=(",", ":")), d["apply-to"])')
read -r policy_name policy_pattern policy_definition policy_applies_to <<<"$policy"
(
  # await_startup needs the node to exist already: ask until it does, for two minutes.
  for _ in $(seq 120); do
    /usr/lib/rabbitmq/bin/rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 && break
    sleep 1
  done
  /usr/lib/rabbitmq/bin/rabbitmqctl set_policy --apply-to "$policy_applies_to" \
      "$policy_name" "$policy_pattern" "$policy_definition" >/dev/null \
    && echo "parked messages expire after $(.venv/bin/python -c 'from offload_core.topology import PARKED_RETENTION_DAYS as d; print(f"{d:g}")') days (policy $policy_name)"
) &
exec /usr/lib/rabbitmq/bin/rabbitmq-server
