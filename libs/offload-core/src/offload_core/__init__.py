"""Offload's messaging core: one implementation of topology, envelope, publisher, runner, metrics."""
