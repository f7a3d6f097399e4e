"""Offload stats: request, signup and mail counts, exact under at-least-once delivery."""
