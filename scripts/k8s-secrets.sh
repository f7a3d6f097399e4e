#!/usr/bin/env bash
# Writes the env files the kustomize overlay turns into Secrets, with fresh random
# passwords, unless they exist already (re-applying must not change the passwords).
set -euo pipefail
dir=${1:?usage: scripts/k8s-secrets.sh OVERLAY_DIR}
namespace=$(sed -n 's/^namespace: *//p' "$dir/kustomization.yaml")
random() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }
if [[ ! -f $dir/rabbitmq.env ]]; then
  user=offload; password=$(random); host="offload-rabbitmq.$namespace.svc"
  umask 077
  cat > "$dir/rabbitmq.env" <<ENV
username=$user
password=$password
amqp-url=amqp://$user:$password@$host:5672/%2F
management-url=http://$user:$password@$host:15672
ENV
  echo "wrote $dir/rabbitmq.env"
fi
if [[ ! -f $dir/erlang-cookie.env ]]; then
  umask 077
  echo "cookie=$(random)$(random)" > "$dir/erlang-cookie.env"
  echo "wrote $dir/erlang-cookie.env"
fi
if [[ ! -f $dir/redis.env ]]; then
  umask 077
  printf 'password=%s\nweb-password=%s\n' "$(random)" "$(random)" > "$dir/redis.env"
  echo "wrote $dir/redis.env"
elif ! grep -q '^web-password=' "$dir/redis.env"; then
  # The web's own Redis user (its rate-limit counters), added to a file from before it.
  echo "web-password=$(random)" >> "$dir/redis.env"
  echo "added web-password to $dir/redis.env"
fi
if [[ ! -f $dir/web.env ]]; then
  umask 077
  echo "secret-key=$(random)$(random)" > "$dir/web.env"
  echo "wrote $dir/web.env"
fi
