#!/usr/bin/env bash
# `make dev`'s Prometheus (Debian's), on 127.0.0.1:${OFFLOAD_DEV_PROMETHEUS_PORT:-9090}: it
# scrapes every local service, the mailers the autoscaler starts (status ports 9110-9113,
# one per slot: services/autoscaler/dev-autoscaler.yaml) and RabbitMQ's per-queue metrics,
# and evaluates the project's alert rules (deploy/prometheus/offload-rules.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${OFFLOAD_DEV_PROMETHEUS_PORT:-9090}
prometheus=$(command -v prometheus || echo /usr/bin/prometheus)
if [[ ! -x $prometheus ]]; then
  echo "no Prometheus: install Debian's (apt-get install prometheus) for graphs and alerts; the stack runs without it"
  exec sleep infinity
fi
state="$PWD/.state/prometheus"
mkdir -p "$state/data"
cat > "$state/prometheus.yml" <<CONF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $PWD/deploy/prometheus/offload-rules.yaml
scrape_configs:
  - job_name: offload-web
    static_configs: [{targets: ["127.0.0.1:9100"]}]
  - job_name: offload-stats-api
    static_configs: [{targets: ["127.0.0.1:9104"]}]
  - job_name: offload-stats-runner
    static_configs: [{targets: ["127.0.0.1:9102"]}]
  - job_name: offload-autoscaler
    static_configs: [{targets: ["127.0.0.1:9103"]}]
  - job_name: offload-mailer
    static_configs: [{targets: ["127.0.0.1:9110", "127.0.0.1:9111", "127.0.0.1:9112", "127.0.0.1:9113"]}]
  - job_name: rabbitmq
    metrics_path: /metrics/detailed
    params:
      family: [queue_coarse_metrics, queue_consumer_count]
    static_configs: [{targets: ["127.0.0.1:15692"]}]
CONF
exec "$prometheus" --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/data" \
  --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$port" --log.level=warn
