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
exec rabbitmq-server
