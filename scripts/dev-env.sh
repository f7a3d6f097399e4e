#!/usr/bin/env bash
# The environment file `make dev` hands to honcho: the embedded defaults of .env.dev, less
# every variable the caller's environment already sets. honcho lets its env file win over
# the environment, so without this `OFFLOAD_MAILER_BACKEND=smtp make dev` would still mail
# into the outbox folder.
set -euo pipefail

defaults=${1:-.env.dev}
while IFS= read -r line || [[ -n $line ]]; do
  if [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)= ]] && printenv "${BASH_REMATCH[1]}" >/dev/null; then
    printf '# %s: from the environment\n' "${BASH_REMATCH[1]}"
    continue
  fi
  printf '%s\n' "$line"
done < "$defaults"
# OFFLOAD_DEV_TRACING=on: every service sends its spans to the local Jaeger (scripts/dev-jaeger.sh).
if [[ ${OFFLOAD_DEV_TRACING:-off} == on ]] && ! printenv OTEL_EXPORTER_OTLP_ENDPOINT >/dev/null; then
  printf 'OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318\n'
fi
