"""Offload autoscaler: KEDA semantics, scale targets on Kubernetes and on one machine."""
