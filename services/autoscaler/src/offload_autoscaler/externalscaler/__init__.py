"""KEDA's external scaler protocol, generated from services/autoscaler/proto by
scripts/external-scaler-stubs.sh (do not edit the generated modules)."""
