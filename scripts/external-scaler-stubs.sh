#!/usr/bin/env bash
# The Python modules of KEDA's external scaler protocol (services/autoscaler/proto), generated
# with grpcio-tools into offload_autoscaler/externalscaler/. A test regenerates them and fails
# when the committed ones differ. Usage: scripts/external-scaler-stubs.sh [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/services/autoscaler/src/offload_autoscaler/externalscaler}
python=${PYTHON:-$root/.venv/bin/python}
mkdir -p "$out"
cd "$root/services/autoscaler/proto"
"$python" -m grpc_tools.protoc -I. --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" externalscaler.proto
# grpc_tools writes an absolute import of the messages module; the package imports it relatively.
sed -i 's/^import externalscaler_pb2 as externalscaler__pb2$/from . import externalscaler_pb2 as externalscaler__pb2/' \
  "$out/externalscaler_pb2_grpc.py"
