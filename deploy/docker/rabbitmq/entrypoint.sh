#!/bin/sh
# No default credentials: the user and password come from the environment, or nothing starts.
set -eu
: "${RABBITMQ_DEFAULT_USER:?set RABBITMQ_DEFAULT_USER}"
: "${RABBITMQ_DEFAULT_PASS:?set RABBITMQ_DEFAULT_PASS}"
conf="$HOME/offload-rabbitmq.conf"
cat > "$conf" <<CONF
default_user = ${RABBITMQ_DEFAULT_USER}
default_pass = ${RABBITMQ_DEFAULT_PASS}
loopback_users.guest = true
listeners.tcp.default = 5672
management.tcp.port = 15672
CONF
export RABBITMQ_CONFIG_FILE="$conf"
# Logs to stdout; the few files the node still writes (crash dump, log base) go under $HOME,
# the data volume, since the root filesystem may be read-only.
export RABBITMQ_LOGS="${RABBITMQ_LOGS:--}"
export RABBITMQ_LOG_BASE="${RABBITMQ_LOG_BASE:-$HOME/log}"
export ERL_CRASH_DUMP="${ERL_CRASH_DUMP:-$HOME/erl_crash.dump}"
mkdir -p "$RABBITMQ_LOG_BASE"
echo "offload-rabbitmq: RabbitMQ $(cat /.rabbitmq-version 2>/dev/null || echo '(version unknown)') from Debian trixie"
# Debian's /usr/sbin wrapper sends the output to /var/log/rabbitmq (read-only under the
# chart) and keeps a shell as PID 1: run the server itself, logging to stdout.
exec /usr/lib/rabbitmq/bin/rabbitmq-server
