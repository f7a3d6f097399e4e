#!/usr/bin/env bash
# The broker for `make dev`: use the one answering on the AMQP port, or run a private
# RabbitMQ node (own node name, data under .state/rabbitmq, management plugin on).
set -euo pipefail
cd "$(dirname "$0")/.."

amqp_port=${OFFLOAD_DEV_AMQP_PORT:-5672}
management_port=${OFFLOAD_DEV_MANAGEMENT_PORT:-15672}
broker_metrics_port=${OFFLOAD_DEV_BROKER_METRICS_PORT:-15692}

if (exec 3<>"/dev/tcp/127.0.0.1/${amqp_port}") 2>/dev/null; then
  echo "a broker already answers on 127.0.0.1:${amqp_port}: using it"
  exec sleep infinity
fi

state="$PWD/.state/rabbitmq"
tree=$(scripts/rabbitmq-tree.sh)
export OFFLOAD_RABBITMQ_TREE="$tree"
version=$(cat "$tree/.rabbitmq-version")
series=${version%.*}  # 4.0: a node boots from the data of its own series, not of 3.x
if [ -d "$state/mnesia" ] && [ "$(cat "$state/series" 2>/dev/null)" != "$series" ]; then
  aside="$state-before-$series-$(date +%Y%m%d-%H%M%S)"
  mv "$state" "$aside"
  echo "moved $state aside to $aside: another RabbitMQ series wrote it, and RabbitMQ $series" \
    "cannot boot from it (its queues and messages stay there; delete it when done with them)"
fi
mkdir -p "$state/mnesia" "$state/log"
echo "$series" >"$state/series"
# The tree's programs run through offload_testkit.rabbitmq_tree (mount namespace and chroot).
in_tree=(.venv/bin/python -m offload_testkit.rabbitmq_tree --bind "$state")
echo "[rabbitmq_management,rabbitmq_prometheus]." > "$state/enabled_plugins"
cat > "$state/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:${amqp_port}
management.tcp.port = ${management_port}
management.tcp.ip = 127.0.0.1
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = ${broker_metrics_port}
collect_statistics_interval = 1000
CONF
# Quorum queues report their depth once per tick (5 s by default): the local autoscaler
# of `make dev` should see a backlog within a second.
echo "[{rabbit, [{quorum_tick_interval, 1000}]}]." > "$state/advanced.config"
export RABBITMQ_NODENAME=${OFFLOAD_DEV_NODENAME:-offload-dev@localhost}
export RABBITMQ_MNESIA_BASE="$state/mnesia"
export RABBITMQ_LOG_BASE="$state/log"
export RABBITMQ_ENABLED_PLUGINS_FILE="$state/enabled_plugins"
export RABBITMQ_CONFIG_FILE="$state/rabbitmq"
export RABBITMQ_ADVANCED_CONFIG_FILE="$state/advanced.config"
export RABBITMQ_DIST_PORT=${OFFLOAD_DEV_DIST_PORT:-25672}
export HOME=${HOME:-$state}
echo "starting a private RabbitMQ $version node on 127.0.0.1:${amqp_port} (management http://127.0.0.1:${management_port}, guest/guest)"
# The parking queues' policy, as the chart sets it (offload_core.topology): applied once the
# node is up, by a process of its own, as the node takes this shell's place.
policy=$(.venv/bin/python -c 'import json, sys; from offload_core.topology import parked_retention_policy as p
d = p(rabbitmq_major=int(sys.argv[1])); print(d["name"], d["pattern"], json.dumps(d["definition"], separators=(",", ":")), d["apply-to"])' "${version%%.*}")
read -r policy_name policy_pattern policy_definition policy_applies_to <<<"$policy"
(
  # await_startup needs the node to exist already: ask until it does, for two minutes.
  for _ in $(seq 120); do
    "${in_tree[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 && break
    sleep 1
  done
  "${in_tree[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl set_policy --apply-to "$policy_applies_to" \
      "$policy_name" "$policy_pattern" "$policy_definition" >/dev/null \
    && echo "parked messages expire after $(.venv/bin/python -c 'from offload_core.topology import PARKED_RETENTION_DAYS as d; print(f"{d:g}")') days (policy $policy_name: $policy_definition)"
) &
# epmd first: the node registers with it (idempotent when one runs already).
"${in_tree[@]}" /usr/bin/epmd -daemon
exec "${in_tree[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
